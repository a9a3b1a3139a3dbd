"""FTGO's checked-in OpenAPI and AsyncAPI documents match the code."""

from __future__ import annotations

from ftgo.app.openapi import documents


def test_checked_in_openapi_documents_are_current() -> None:
    for path, text in documents().items():
        assert path.exists(), f"missing {path}; run: python -m ftgo.app.openapi"
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.name} is out of date with its app; regenerate: python -m ftgo.app.openapi"
        )
