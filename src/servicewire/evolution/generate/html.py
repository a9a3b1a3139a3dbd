"""A self-contained HTML page for an AsyncAPI 3.0 document: no scripts, no external assets.

    Path("order-service.html").write_text(render_html(build_asyncapi(...)))

The page lists operations by channel, then every message with its headers and payload
as property tables (``$ref`` followed, nested objects indented), the Avro schema and the
raw JSON Schema in collapsible blocks. All text from the document is HTML-escaped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html import escape
from typing import Any

_CSS = """
body{font:15px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;
color:#1d2330;background:#f7f8fa}
header{background:#1d2330;color:#fff;padding:24px 40px}header h1{margin:0 0 4px}
header .v{opacity:.75}main{max-width:1100px;margin:0 auto;padding:24px 40px}
section{background:#fff;border:1px solid #e2e5ea;border-radius:8px;padding:16px 24px;margin:16px 0}
h2{border-bottom:2px solid #e2e5ea;padding-bottom:4px}h3{margin:8px 0}
.badge{display:inline-block;border-radius:4px;padding:1px 8px;font-size:12px;font-weight:600;
text-transform:uppercase;color:#fff;margin-right:8px;vertical-align:middle}
.send{background:#2f7d32}.receive{background:#1565c0}.kind{background:#6a4c93}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px}
pre{background:#f3f4f6;padding:12px;overflow:auto;border-radius:6px}
table{border-collapse:collapse;width:100%;margin:8px 0}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eceef2;vertical-align:top}
th{background:#fafbfc;font-weight:600}.req{color:#c62828;font-size:12px}
nav ul{columns:2;list-style:none;padding:0}nav a{text-decoration:none}
.muted{color:#667085}
"""


def _resolve(doc: dict[str, Any], node: Any, depth: int = 0) -> Any:
    while isinstance(node, dict) and isinstance(node.get("$ref"), str) and depth < 32:
        target: Any = doc
        for part in node["$ref"].lstrip("#/").split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            target = target.get(part) if isinstance(target, dict) else None
        node = target
        depth += 1
    return node


def _type_label(doc: dict[str, Any], schema: Any) -> str:
    if isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    schema = _resolve(doc, schema)
    if not isinstance(schema, dict):
        return "any"
    if "const" in schema:
        return f"const {json.dumps(schema['const'])}"
    if "enum" in schema:
        return "enum " + ", ".join(json.dumps(v) for v in schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " | ".join(_type_label(doc, s) for s in schema[key])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {_type_label(doc, schema.get('items', {}))}"
    if isinstance(kind, list):
        return " | ".join(str(k) for k in kind)
    fmt = schema.get("format")
    return f"{kind} ({fmt})" if fmt else str(kind)


@dataclass
class _Row:
    required: bool
    type: str
    description: str


def _properties(
    doc: dict[str, Any], schema: Any, prefix: str, rows: dict[str, _Row], seen: set[str]
) -> None:
    """Fill ``rows`` (dotted path -> row); a later ``allOf`` part refines an earlier row."""
    schema = _resolve(doc, schema)
    if not isinstance(schema, dict):
        return
    for part in schema.get("allOf", []):
        _properties(doc, part, prefix, rows, seen)
    required = set(schema.get("required", []))
    for name, prop in (schema.get("properties") or {}).items():
        target = _resolve(doc, prop)
        info = target if isinstance(target, dict) else {}
        desc = info.get("description") or (
            prop.get("description") if isinstance(prop, dict) else ""
        )
        default = f" default {json.dumps(info['default'])}" if "default" in info else ""
        path = prefix + name
        earlier = rows.get(path)
        rows[path] = _Row(
            name in required or (earlier is not None and earlier.required),
            _type_label(doc, prop) + default,
            str(desc or (earlier.description if earlier else "")),
        )
        ref = prop.get("$ref") if isinstance(prop, dict) else None
        nested = info.get("items", info) if info.get("type") == "array" else info
        nested_ref = ref or (nested.get("$ref") if isinstance(nested, dict) else None)
        key = str(nested_ref or id(nested))
        if key in seen or len(prefix) > 80:  # recursive models: show each type once per path
            continue
        if isinstance(_resolve(doc, nested), dict) and _resolve(doc, nested).get("properties"):
            _properties(doc, nested, f"{path}.", rows, seen | {key})


def _table(doc: dict[str, Any], schema: Any) -> str:
    rows: dict[str, _Row] = {}
    _properties(doc, schema, "", rows, set())
    if not rows:
        return '<p class="muted">no properties</p>'
    head = "<tr><th>name</th><th>type</th><th>description</th></tr>"
    body = "".join(
        f"<tr><td><code>{escape(path)}</code>"
        + (' <span class="req">required</span>' if row.required else "")
        + f"</td><td>{escape(row.type)}</td><td>{escape(row.description)}</td></tr>"
        for path, row in rows.items()
    )
    return f"<table>{head}{body}</table>"


def _block(title: str, value: Any) -> str:
    text = escape(json.dumps(value, indent=2, ensure_ascii=False))
    return f"<details><summary>{escape(title)}</summary><pre>{text}</pre></details>"


def render_html(doc: dict[str, Any]) -> str:
    """The whole page, as one string."""
    info = doc.get("info") or {}
    title = str(info.get("title", "AsyncAPI document"))
    operations: dict[str, Any] = doc.get("operations") or {}
    messages: dict[str, Any] = (doc.get("components") or {}).get("messages") or {}
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<header><h1>{escape(title)}</h1>",
        f'<div class="v">version {escape(str(info.get("version", "")))} · '
        f"AsyncAPI {escape(str(doc.get('asyncapi', '')))}</div></header><main>",
    ]
    if info.get("description"):
        parts.append(f"<p>{escape(str(info['description']))}</p>")
    parts.append("<nav><h2>Messages</h2><ul>")
    parts.extend(f'<li><a href="#msg-{escape(m)}">{escape(m)}</a></li>' for m in messages)
    parts.append("</ul></nav><h2>Operations</h2>")
    for oid, op in operations.items():
        channel = _resolve(doc, op.get("channel")) or {}
        address = channel.get("address") if isinstance(channel, dict) else None
        shown = address if address else "(dynamic: the replyto header)"
        action = str(op.get("action", ""))
        parts.append(
            f'<section id="op-{escape(oid)}"><h3><span class="badge {escape(action)}">'
            f"{escape(action)}</span><code>{escape(str(shown))}</code></h3>"
        )
        if op.get("description"):
            parts.append(f"<p>{escape(str(op['description']))}</p>")
        links = []
        for ref in op.get("messages", []):
            mid = str(ref.get("$ref", "")).rsplit("/", 1)[-1]
            links.append(f'<a href="#msg-{escape(mid)}">{escape(mid)}</a>')
        parts.append(f"<p>messages: {', '.join(links) or 'none'}</p></section>")
    parts.append("<h2>Message reference</h2>")
    for mid, message in messages.items():
        kind = str((message.get("x-servicewire") or {}).get("kind", ""))
        version = str((message.get("x-servicewire") or {}).get("version", ""))
        parts.append(
            f'<section id="msg-{escape(mid)}"><h3>'
            + (f'<span class="badge kind">{escape(kind)}</span>' if kind else "")
            + f"{escape(mid)} <code>{escape(str(message.get('name', '')))}</code> "
            f'<span class="muted">{escape(version)}</span></h3>'
        )
        for key in ("summary", "description"):
            if message.get(key) and (key == "summary" or message[key] != message.get("summary")):
                parts.append(f"<p>{escape(str(message[key]))}</p>")
        parts.append(
            f"<p>content type <code>{escape(str(message.get('contentType', '')))}</code></p>"
        )
        parts.append("<h4>Payload</h4>" + _table(doc, message.get("payload")))
        parts.append("<h4>Headers</h4>" + _table(doc, message.get("headers")))
        parts.append(_block("JSON Schema of the payload", _resolve(doc, message.get("payload"))))
        avro = message.get("x-avro-payload")
        if isinstance(avro, dict):
            parts.append(_block("Avro schema", avro.get("schema")))
        parts.append("</section>")
    parts.append("</main></body></html>")
    return "\n".join(parts)
