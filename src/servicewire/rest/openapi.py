"""OpenAPI documents: problem details documented on every operation; export to the repo.

Each app's document is checked in under docs/api/ and a test compares it with the
app's current one. Regenerate after changing an API::

    python -m servicewire.rest servicewire.rest.example:app docs/api/example.json
"""

from __future__ import annotations

import argparse
import importlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from servicewire.rest.negotiation import XML
from servicewire.rest.problems import PROBLEM_JSON, ProblemDetails, _phrase

_PROBLEM_REF = {"$ref": "#/components/schemas/ProblemDetails"}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_JSON: {"schema": _PROBLEM_REF}}}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route that answers these statuses with problem details::

    @v1.post("/orders/{order_id}/cancel", responses=problem_responses(409))
    """
    return {status: _problem(_phrase(status)) for status in statuses}


def _add_problems(document: dict[str, Any]) -> dict[str, Any]:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schema = ProblemDetails.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(schema.pop("$defs", {}))
    schemas["ProblemDetails"] = schema
    for path_item in document.get("paths", {}).values():
        for method, operation in path_item.items():
            responses = operation.setdefault("responses", {})
            validation = responses.pop("422", None)
            has_input = validation is not None or "requestBody" in operation
            for status, response in responses.items():
                content = response.get("content", {})
                if status.startswith("2") and "application/json" in content:
                    content.setdefault(XML, {"schema": {}})
                if PROBLEM_JSON in content and content.get("application/json") == {"schema": {}}:
                    # FastAPI adds an empty JSON entry next to the one we declared.
                    del content["application/json"]
            if method == "get":
                responses.setdefault("304", {"description": "Not Modified (ETag matched)"})
            responses.setdefault("404", _problem("Not Found"))
            responses.setdefault("406", _problem("Not Acceptable"))
            if "requestBody" in operation:
                responses.setdefault("400", _problem("Bad Request (the body cannot be parsed)"))
                responses.setdefault("413", _problem("Content Too Large"))
                responses.setdefault("415", _problem("Unsupported Media Type"))
            if has_input:
                responses["422"] = _problem("Request validation failed")
            responses.setdefault("500", _problem("Internal Server Error"))
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return document


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` document problem details, 304 and the XML representation."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=app.openapi_version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = _add_problems(document)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def render_openapi(app: FastAPI) -> str:
    """The document as stable, diff-friendly JSON text."""
    return json.dumps(app.openapi(), indent=2, ensure_ascii=False) + "\n"


def export_openapi(app: FastAPI, path: str | Path) -> Path:
    """Write the app's OpenAPI document to ``path`` (the file to check in)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_openapi(app), encoding="utf-8")
    return target


def load_app(spec: str) -> FastAPI:
    """Import ``package.module:attribute`` and return the app it names."""
    module_name, _, attribute = spec.partition(":")
    app = getattr(importlib.import_module(module_name), attribute or "app")
    if not isinstance(app, FastAPI):
        raise TypeError(f"{spec} is not a FastAPI app")
    return app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Export a FastAPI app's OpenAPI document.")
    parser.add_argument("app", help="module:attribute, e.g. servicewire.rest.example:app")
    parser.add_argument("path", help="where to write the JSON document")
    args = parser.parse_args(argv)
    print(export_openapi(load_app(args.app), args.path))
    return 0
