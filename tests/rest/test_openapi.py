"""The checked-in OpenAPI document matches the app, and the app honours it (schemathesis)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from servicewire.rest import render_openapi
from servicewire.rest.example import build_app
from tests.rest.server import serve

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "api" / "example.json"
REGENERATE = "python -m servicewire.rest servicewire.rest.example:app docs/api/example.json"


# FastAPI and Pydantic word the document a little differently across releases (titles,
# ordering); what the document means is the API lock's business (tests/evolution).
@pytest.mark.generated_text
def test_checked_in_document_matches_the_app() -> None:
    current = render_openapi(build_app())
    assert DOCUMENT.exists(), f"missing {DOCUMENT}; run: {REGENERATE}"
    assert DOCUMENT.read_text(encoding="utf-8") == current, (
        f"docs/api/example.json is out of date with the app; regenerate it: {REGENERATE}"
    )


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with serve(build_app()) as port:
        yield f"http://127.0.0.1:{port}"


schema = schemathesis.openapi.from_path(DOCUMENT)


@schema.parametrize()
@settings(
    max_examples=11,  # 9 operations: about 100 examples in all
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)
def test_app_honours_its_document(case: schemathesis.Case, base_url: str) -> None:
    # Checks: no 5xx, status codes, content types and bodies as documented.
    case.call_and_validate(base_url=base_url)
