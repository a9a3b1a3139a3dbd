"""FTGO's checked-in OpenAPI and AsyncAPI documents match the code."""

from __future__ import annotations

import pytest

from ftgo.app.openapi import documents


# FastAPI and Pydantic word the document a little differently across releases (titles,
# ordering); what the document means is the API lock's business (tests/evolution).
@pytest.mark.generated_text
def test_checked_in_openapi_documents_are_current() -> None:
    for path, text in documents().items():
        assert path.exists(), f"missing {path}; run: python -m ftgo.app.openapi"
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.name} is out of date with its app; regenerate: python -m ftgo.app.openapi"
        )
