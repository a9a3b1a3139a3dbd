"""AsyncAPI 3.0 documents generated from a service's channels and contracts.

Each contract becomes a message with its JSON Schema (from Pydantic) as the payload,
its Avro schema (from :func:`servicewire.codecs.avro.avro_schema`, when fastavro is
installed) under ``x-avro-payload``, and the CloudEvents attributes Servicewire puts on
every message documented as message headers::

    doc = build_asyncapi(
        "Order Service", "1.0.0",
        [ChannelUse("order-service", "receive", [CreateOrder]),
         ChannelUse("ftgo.order.events", "send", [OrderCreated])],
        description="Creates and tracks orders.",
    )
    json.dumps(doc)          # a valid AsyncAPI 3.0.0 document

Channel ids are the channel names; operation ids are ``<action>-<channel>``; message
ids are the contract's short wire name, suffixed ``V<major>`` for majors above 1.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Literal

from pydantic.json_schema import models_json_schema

from servicewire.messaging import headers as h
from servicewire.messaging.channels import ChannelUse
from servicewire.messaging.contracts import Contract, Reply

ASYNCAPI_VERSION = "3.0.0"
AVRO_FORMAT = "application/vnd.apache.avro+json;version=1.9.0"
REPLY_CHANNEL = "(reply-to)"
_HEADERS_SCHEMA = "CloudEventsHeaders"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")


def _escape(ref_part: str) -> str:
    return ref_part.replace("~", "~0").replace("/", "~1")


def _channel_id(channel: str) -> str:
    return "reply-to" if channel == REPLY_CHANNEL else _UNSAFE.sub("_", channel)


def cloudevents_headers_schema() -> dict[str, Any]:
    """The JSON Schema of the headers every Servicewire message carries."""
    text = {"type": "string"}
    return {
        "type": "object",
        "description": "CloudEvents 1.0 context attributes (binary content mode) and "
        "Servicewire extensions. Protocol bindings add their prefix (ce- on HTTP and "
        "NATS, ce_ on Kafka, cloudEvents: on AMQP).",
        "required": [h.ID, h.SPEC_VERSION, h.SOURCE, h.TYPE],
        "properties": {
            h.ID: {**text, "description": "unique, time-ordered message id (UUIDv7)"},
            h.SPEC_VERSION: {"type": "string", "const": "1.0"},
            h.SOURCE: {**text, "description": "the sending service"},
            h.TYPE: {**text, "description": "contract wire name"},
            h.CONTENT_TYPE: {
                **text,
                "description": "payload format: application/json, application/xml, "
                "application/protobuf or application/avro",
            },
            h.TIME: {**text, "format": "date-time"},
            h.DESTINATION: {**text, "description": "channel the message was sent to"},
            h.KIND: {"type": "string", "enum": ["document", "command", "event", "reply"]},
            h.VERSION: {**text, "description": "contract semantic version MAJOR.MINOR.PATCH"},
            h.PARTITION_KEY: {**text, "description": "messages with one key are handled in order"},
            h.CORRELATION_ID: {**text, "description": "ties a conversation together"},
            h.CAUSATION_ID: {**text, "description": "id of the message that caused this one"},
            h.REPLY_TO: {**text, "description": "channel a reply should go to"},
            h.REPLY_OUTCOME: {"type": "string", "enum": ["success", "failure"]},
            h.TRACEPARENT: {**text, "description": "W3C trace context"},
            h.TRACESTATE: {**text, "description": "W3C trace state"},
        },
    }


def _message_headers(cls: type[Contract]) -> dict[str, Any]:
    """The shared header schema narrowed to this contract's type, kind and MAJOR."""
    version = cls.contract_version()
    props: dict[str, Any] = {
        h.TYPE: {"type": "string", "const": cls.contract_name()},
        h.KIND: {"type": "string", "const": str(cls.contract_kind())},
        h.VERSION: {
            "type": "string",
            "pattern": rf"^{version.major}\.\d+\.\d+",
            "description": f"any {version.major}.x version is read by this contract "
            f"(tolerant reader); this document describes {version}",
        },
    }
    if issubclass(cls, Reply):
        outcome = "success" if cls.is_success() else "failure"
        props[h.REPLY_OUTCOME] = {"type": "string", "const": outcome}
    return {"allOf": [{"$ref": f"#/components/schemas/{_HEADERS_SCHEMA}"}, {"properties": props}]}


def _avro(cls: type[Contract]) -> dict[str, Any] | None:
    """The contract's Avro schema, or ``None`` when the Avro codec is not available."""
    try:
        from servicewire.codecs.avro import avro_schema
    except ImportError:  # fastavro not installed: document JSON Schema only
        return None
    try:
        return dict(avro_schema(cls))
    except (TypeError, ValueError):  # a field type Avro cannot express
        return None


def _message_ids(contracts: Iterable[type[Contract]]) -> dict[type[Contract], str]:
    ids: dict[type[Contract], str] = {}
    taken: set[str] = set()
    for cls in contracts:
        if cls in ids:
            continue
        short = cls.contract_name().rsplit(".", 1)[-1] or cls.__name__
        major = cls.contract_version().major
        candidate = short if major <= 1 else f"{short}V{major}"
        if candidate in taken:
            candidate = _UNSAFE.sub("_", f"{cls.contract_name()}_v{major}")
        ids[cls] = candidate
        taken.add(candidate)
    return ids


def build_asyncapi(
    title: str, version: str, uses: Iterable[ChannelUse], *, description: str = ""
) -> dict[str, Any]:
    """An AsyncAPI 3.0 document (as a dict) for ``uses``."""
    uses = list(uses)
    contracts = [cls for use in uses for cls in use.contracts]
    ids = _message_ids(contracts)
    order = list(ids)
    refs, top = models_json_schema(
        [(cls, "validation") for cls in order], ref_template="#/components/schemas/{model}"
    )
    schemas: dict[str, Any] = {_HEADERS_SCHEMA: cloudevents_headers_schema()}
    schemas.update(top.get("$defs", {}))

    messages: dict[str, Any] = {}
    for cls in order:
        mid = ids[cls]
        doc = (cls.__doc__ or "").strip()
        message: dict[str, Any] = {
            "name": cls.contract_name(),
            "title": cls.__name__,
            "contentType": "application/json",
            "headers": _message_headers(cls),
            "payload": refs[(cls, "validation")],
            "correlationId": {"location": f"$message.header#/{h.CORRELATION_ID}"},
            "tags": [{"name": str(cls.contract_kind())}],
            "x-servicewire": {
                "kind": str(cls.contract_kind()),
                "version": str(cls.contract_version()),
                "defaultChannel": cls.default_channel(),
                "partitionKey": cls.__contract_key__,
            },
        }
        if doc:
            message["summary"] = doc.splitlines()[0]
            if len(doc.splitlines()) > 1:
                message["description"] = doc
        avro = _avro(cls)
        if avro is not None:
            message["x-avro-payload"] = {"schemaFormat": AVRO_FORMAT, "schema": avro}
        messages[mid] = message

    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for use in uses:
        cid = _channel_id(use.channel)
        channel = channels.setdefault(cid, {"address": None, "messages": {}})
        if use.channel == REPLY_CHANNEL:
            channel["description"] = "The requester's reply channel, named by its replyto header."
        else:
            channel["address"] = use.channel
        for cls in use.contracts:
            channel["messages"][ids[cls]] = {"$ref": f"#/components/messages/{ids[cls]}"}
        _add_operation(operations, use, cid, [ids[c] for c in use.contracts])

    info: dict[str, Any] = {"title": title, "version": version}
    if description:
        info["description"] = description
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": info,
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def _add_operation(
    operations: dict[str, Any], use: ChannelUse, cid: str, message_ids: list[str]
) -> None:
    action: Literal["send", "receive"] = use.action
    oid = f"{action}-{cid}"
    op = operations.setdefault(
        oid, {"action": action, "channel": {"$ref": f"#/channels/{_escape(cid)}"}, "messages": []}
    )
    if use.description:
        op["description"] = use.description
    for mid in message_ids:
        ref = {"$ref": f"#/channels/{_escape(cid)}/messages/{_escape(mid)}"}
        if ref not in op["messages"]:
            op["messages"].append(ref)
