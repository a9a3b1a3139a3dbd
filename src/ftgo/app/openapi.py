"""FTGO's published API documents: OpenAPI for each REST app, AsyncAPI for its messages.

``python -m ftgo.app.openapi`` writes them to ``docs/api/`` (checked in; a test fails when an
app and its document disagree, and ``servicewire api check`` judges each change).
"""

from __future__ import annotations

import sys
from pathlib import Path

from fastapi import FastAPI

from ftgo.app.system import FtgoSystem
from ftgo.consumer.rest import build_consumer_app
from ftgo.order.rest import build_order_app
from servicewire.rest import render_openapi

DOCS = Path(__file__).resolve().parents[3] / "docs" / "api"  # src/ftgo/app/ -> repository


def apps() -> dict[str, FastAPI]:
    """Each REST app, built on services that are never started (documents only)."""
    from ftgo.restaurant.rest import build_restaurant_app

    system = FtgoSystem.create(
        order_db="sqlite://",
        consumer_db="sqlite://",
        restaurant_db="sqlite://",
        transport="memory://ftgo-apis",
    )
    return {
        "ftgo-order": build_order_app(system.orders),
        "ftgo-consumer": build_consumer_app(system.consumer_service),
        "ftgo-restaurant": build_restaurant_app(system.restaurant_service),
    }


def documents() -> dict[Path, str]:
    """OpenAPI documents of the REST apps and AsyncAPI documents (JSON and HTML) of the
    message APIs, by the path they are checked in at."""
    from servicewire.evolution import build_asyncapi, document_text, load_uses, render_html

    found = {DOCS / f"{name}.json": render_openapi(app) for name, app in apps().items()}
    for service in ("order", "consumer", "restaurant"):
        # the target `servicewire docs asyncapi` and the API lock read: the same document
        uses, title, version = load_uses(f"ftgo.asyncapi:{service}_service")
        doc = build_asyncapi(title, version or "1.0.0", uses)
        found[DOCS / f"ftgo-{service}-asyncapi.json"] = document_text(doc, ".json")
        found[DOCS / f"ftgo-{service}-asyncapi.html"] = render_html(doc)
    return found


def main() -> int:
    DOCS.mkdir(parents=True, exist_ok=True)
    for path, text in documents().items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
