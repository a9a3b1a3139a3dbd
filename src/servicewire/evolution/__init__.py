"""API evolution: which semantic-version bump a change to an API document needs.

Compare two versions of an OpenAPI, ``.proto``, Avro, JSON Schema or AsyncAPI document
and get every change with its location and the bump it needs (MAJOR, MINOR, PATCH or
none), then check the versions the documents declare::

    from servicewire.evolution import compare, judge, load_document

    old = load_document(Path("v1/openapi.yaml"))
    new = load_document(Path("v2/openapi.yaml"))
    report = compare(old, new)
    print(report.bump.label)                 # "MINOR"
    for change in report.changes:
        print(change.code, change.location, change.message)
    judge(report.bump, old.version, new.version).ok

The rules live in one table (:data:`~servicewire.evolution.policy.DEFAULT_BUMPS`); a
:class:`Policy` overrides the cases the literature leaves open. The command line is
``servicewire compat OLD NEW``; the API lock file is :mod:`servicewire.evolution.lock`.

The documents generated from code (:mod:`servicewire.evolution.generate`) are here too::

    from servicewire.evolution import build_asyncapi, document_text, load_uses, render_html

    uses, title, version = load_uses("ftgo.asyncapi:order_service")
    doc = build_asyncapi(title, version or "1.0.0", uses)
    Path("order-asyncapi.json").write_text(document_text(doc, ".json"))
    Path("order-asyncapi.html").write_text(render_html(doc))
"""

from servicewire.evolution.documents import ApiDocument, Verdict, compare, judge, load_document
from servicewire.evolution.generate import (
    TargetError,
    build_asyncapi,
    document_text,
    load_uses,
    render_html,
)
from servicewire.evolution.model import Bump, Change, DocumentError, DocumentKind, Report
from servicewire.evolution.policy import DEFAULT_BUMPS, PRESETS, Policy

__all__ = [
    "DEFAULT_BUMPS",
    "PRESETS",
    "ApiDocument",
    "Bump",
    "Change",
    "DocumentError",
    "DocumentKind",
    "Policy",
    "Report",
    "TargetError",
    "Verdict",
    "build_asyncapi",
    "compare",
    "document_text",
    "judge",
    "load_document",
    "load_uses",
    "render_html",
]
