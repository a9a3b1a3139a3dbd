"""Compare two AsyncAPI 3.0 documents: channels, operations and their messages.

Channels and operations are the API's surface: adding one is MINOR, removing one or
changing its address or action is MAJOR. A channel is known by its address, so a key
renamed (or a parameter renamed inside the address) is not a change. Message payloads
are judged from the side that reads them: on a channel the application only receives
on (every operation ``action: receive``), others write and it reads (context
``receive``, the request rules); otherwise in both directions (context ``message``,
see :mod:`servicewire.evolution.jsonschema`). An Avro payload
(``schemaFormat: application/vnd.apache.avro...``) is compared with the Avro rules::

    report = compare_asyncapi(old_doc, new_doc, Policy())
    [c.code for c in report.changes]  # ["message-property-added-optional"] on a send channel
"""

from __future__ import annotations

import re
from typing import Any

from servicewire.evolution.avro import compare_avro
from servicewire.evolution.jsonschema import Context, SchemaDiff, canonical
from servicewire.evolution.model import DocumentError, Report, join, shown
from servicewire.evolution.openapi_access import compare_servers
from servicewire.evolution.policy import Collector, Policy
from servicewire.evolution.refs import resolve

_DOC_KEYS = ("title", "summary", "description")
_PARAM = re.compile(r"\{[^}]+\}")


def check_asyncapi(doc: Any, source: str) -> None:
    """Raise :class:`DocumentError` unless ``doc`` looks like AsyncAPI 3.x."""
    if not isinstance(doc, dict) or not str(doc.get("asyncapi", "")).startswith("3."):
        raise DocumentError(source, "not an AsyncAPI 3.x document (no 'asyncapi: 3.x')")


def compare_asyncapi(old: Any, new: Any, policy: Policy, source: str = "asyncapi") -> Report:
    """Every difference between two AsyncAPI 3 documents, with the bump each needs."""
    check_asyncapi(old, source)
    check_asyncapi(new, source)
    return _AsyncApiDiff(old, new, policy, source).run()


def _ref_name(value: Any) -> str:
    """``{"$ref": "#/channels/orders"}`` -> ``orders``."""
    if isinstance(value, dict) and isinstance(value.get("$ref"), str):
        return str(value["$ref"]).rsplit("/", 1)[-1].replace("~1", "/").replace("~0", "~")
    return canonical(value)


class _AsyncApiDiff:
    def __init__(
        self, old: dict[str, Any], new: dict[str, Any], policy: Policy, source: str
    ) -> None:
        self.old = old
        self.new = new
        self.policy = policy
        self.source = source
        self.out = Collector("asyncapi", policy)
        self.schemas = SchemaDiff(self.out, old, new, source)
        # Old channel key -> the new key of the same channel (a key may be renamed).
        self.channel_pairs: dict[str, str] = {}

    def run(self) -> Report:
        old_info, new_info = self.old.get("info") or {}, self.new.get("info") or {}
        for key in _DOC_KEYS:
            if canonical(old_info.get(key)) != canonical(new_info.get(key)):
                self.out.add("documentation-changed", join("/info", key), f"info.{key} changed")
        compare_servers(
            self.out,
            _server_list(self.old.get("servers")),
            _server_list(self.new.get("servers")),
            "/servers",
        )
        self._channels()
        self._operations()
        return self.out.report

    def _section(self, doc: dict[str, Any], key: str) -> dict[str, Any]:
        section = doc.get(key) or {}
        if not isinstance(section, dict):
            raise DocumentError(self.source, f"'{key}' must be an object")
        return {name: resolve(doc, value, self.source) for name, value in section.items()}

    def _channels(self) -> None:
        old, new = self._section(self.old, "channels"), self._section(self.new, "channels")
        pairs = _match_channels(old, new)
        self.channel_pairs = dict(pairs)
        kept_old = {a for a, _ in pairs}
        kept_new = {b for _, b in pairs}
        for name in sorted(new.keys() - kept_new):
            self.out.add("channel-added", join("/channels", name), f"channel {shown(name)} added")
        for name in sorted(old.keys() - kept_old):
            self.out.add(
                "channel-removed", join("/channels", name), f"channel {shown(name)} removed"
            )
        readers = self._actions()
        for old_name, name in pairs:
            loc = join("/channels", name)
            a, b = old[old_name] or {}, new[name] or {}
            if _address_shape(a, old_name) != _address_shape(b, name):
                self.out.add(
                    "channel-address-changed",
                    join(loc, "address"),
                    f"address {shown(a.get('address'))} -> {shown(b.get('address'))}",
                )
            # Only the application's own operations say which way a channel's messages
            # flow; a channel it only receives on is judged from the reading side.
            actions = readers[0].get(old_name, set()) | readers[1].get(name, set())
            ctx: Context = "receive" if actions == {"receive"} else "message"
            self._parameters(a, b, loc, ctx)
            for key in _DOC_KEYS:
                if canonical(a.get(key)) != canonical(b.get(key)):
                    self.out.add("documentation-changed", join(loc, key), f"{key} changed")
            old_msgs = a.get("messages") or {}
            new_msgs = b.get("messages") or {}
            for msg in sorted(new_msgs.keys() - old_msgs.keys()):
                self.out.add(
                    "channel-message-added",
                    join(loc, "messages", msg),
                    f"message {shown(msg)} added",
                )
            for msg in sorted(old_msgs.keys() - new_msgs.keys()):
                self.out.add(
                    "channel-message-removed",
                    join(loc, "messages", msg),
                    f"message {shown(msg)} removed",
                )
            for msg in sorted(old_msgs.keys() & new_msgs.keys()):
                self._message(old_msgs[msg], new_msgs[msg], join(loc, "messages", msg), ctx)

    def _parameters(self, old: dict[str, Any], new: dict[str, Any], loc: str, ctx: Context) -> None:
        """Channel parameters, matched by their position in the address (names are free).

        A parameter's ``enum`` and ``default`` are compared as a string schema in the
        channel's context: an address value that is no longer allowed is narrowing.
        """
        old_names = _PARAM.findall(old.get("address") or "") if old.get("address") else []
        new_names = _PARAM.findall(new.get("address") or "") if new.get("address") else []
        old_params = old.get("parameters") or {}
        new_params = new.get("parameters") or {}
        for old_name, new_name in zip(old_names, new_names, strict=False):
            a = resolve(self.old, old_params.get(old_name[1:-1]), self.source) or {}
            b = resolve(self.new, new_params.get(new_name[1:-1]), self.source) or {}
            self.schemas.compare(
                _parameter_schema(a),
                _parameter_schema(b),
                join(loc, "parameters", new_name[1:-1]),
                ctx,
            )

    def _actions(self) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
        """Per side, channel name -> the actions (``send``, ``receive``) of its operations."""
        found: list[dict[str, set[str]]] = []
        for doc in (self.old, self.new):
            actions: dict[str, set[str]] = {}
            for op in self._section(doc, "operations").values():
                if isinstance(op, dict):
                    action = str(op.get("action"))
                    channel = _ref_name(op.get("channel"))
                    actions.setdefault(channel, set()).add(action)
                    # A reply flows the other way: a service that receives requests
                    # sends the replies, and one that sends requests receives them.
                    reply = resolve(doc, op.get("reply"), self.source)
                    if isinstance(reply, dict) and "channel" in reply:
                        back = {"send": "receive", "receive": "send"}.get(action, action)
                        actions.setdefault(_ref_name(reply["channel"]), set()).add(back)
            found.append(actions)
        return found[0], found[1]

    def _operations(self) -> None:
        old, new = self._section(self.old, "operations"), self._section(self.new, "operations")
        for name in sorted(new.keys() - old.keys()):
            self.out.add(
                "operation-added", join("/operations", name), f"operation {shown(name)} added"
            )
        for name in sorted(old.keys() - new.keys()):
            self.out.add(
                "operation-removed", join("/operations", name), f"operation {shown(name)} removed"
            )
        for name in sorted(old.keys() & new.keys()):
            loc = join("/operations", name)
            a, b = old[name] or {}, new[name] or {}
            if a.get("action") != b.get("action"):
                self.out.add(
                    "operation-action-changed",
                    join(loc, "action"),
                    f"action {a.get('action')} -> {b.get('action')}",
                )
            # A channel key renamed while its address stays is not a change for anyone.
            old_channel = _ref_name(a.get("channel"))
            if self.channel_pairs.get(old_channel, old_channel) != _ref_name(b.get("channel")):
                self.out.add(
                    "operation-channel-changed",
                    join(loc, "channel"),
                    f"channel {_ref_name(a.get('channel'))} -> {_ref_name(b.get('channel'))}",
                )
            for key in _DOC_KEYS:
                if canonical(a.get(key)) != canonical(b.get(key)):
                    self.out.add("documentation-changed", join(loc, key), f"{key} changed")
            old_msgs = {_ref_name(m) for m in a.get("messages") or []}
            new_msgs = {_ref_name(m) for m in b.get("messages") or []}
            for msg in sorted(new_msgs - old_msgs):
                self.out.add(
                    "operation-message-added", join(loc, "messages"), f"message {shown(msg)} added"
                )
            for msg in sorted(old_msgs - new_msgs):
                self.out.add(
                    "operation-message-removed",
                    join(loc, "messages"),
                    f"message {shown(msg)} removed",
                )
            self._reply(a.get("reply"), b.get("reply"), join(loc, "reply"))

    def _reply(self, old_raw: Any, new_raw: Any, loc: str) -> None:
        """An operation's ``reply`` (request/reply): where the answer goes, and its messages.

        A requester waits for the reply, so removing it or moving it to another channel
        or address is MAJOR; adding one is MINOR. Reply messages added or removed follow
        the operation message rules. Reply payloads are compared on the reply channel.
        """
        old = resolve(self.old, old_raw, self.source)
        new = resolve(self.new, new_raw, self.source)
        if not isinstance(old, dict) and not isinstance(new, dict):
            return
        if not isinstance(old, dict):
            self.out.add("operation-reply-added", loc, "a reply was added")
            return
        if not isinstance(new, dict):
            self.out.add("operation-reply-removed", loc, "the reply was removed")
            return
        old_channel = _ref_name(old.get("channel")) if "channel" in old else None
        new_channel = _ref_name(new.get("channel")) if "channel" in new else None
        if old_channel is not None:
            old_channel = self.channel_pairs.get(old_channel, old_channel)
        old_address = resolve(self.old, old.get("address"), self.source) or {}
        new_address = resolve(self.new, new.get("address"), self.source) or {}
        if old_channel != new_channel or canonical(old_address.get("location")) != canonical(
            new_address.get("location")
        ):
            what = f"reply channel {old_channel} -> {new_channel}"
            if old_channel == new_channel:
                what = (
                    f"reply address {shown(old_address.get('location'))} -> "
                    f"{shown(new_address.get('location'))}"
                )
            self.out.add("operation-reply-changed", loc, what)
        old_msgs = {_ref_name(m) for m in old.get("messages") or []}
        new_msgs = {_ref_name(m) for m in new.get("messages") or []}
        for msg in sorted(new_msgs - old_msgs):
            what = f"reply message {shown(msg)} added"
            self.out.add("operation-message-added", join(loc, "messages"), what)
        for msg in sorted(old_msgs - new_msgs):
            what = f"reply message {shown(msg)} removed"
            self.out.add("operation-message-removed", join(loc, "messages"), what)

    def _message(self, old_raw: Any, new_raw: Any, loc: str, ctx: Context) -> None:
        old = self._effective(self.old, old_raw)
        new = self._effective(self.new, new_raw)
        for key in (*_DOC_KEYS, "name"):
            if canonical(old.get(key)) != canonical(new.get(key)):
                self.out.add("documentation-changed", join(loc, key), f"{key} changed")
        if old.get("contentType") != new.get("contentType"):
            self.out.add(
                "message-content-type-changed",
                join(loc, "contentType"),
                f"content type {old.get('contentType')} -> {new.get('contentType')}",
            )
        old_id = resolve(self.old, old.get("correlationId"), self.source) or {}
        new_id = resolve(self.new, new.get("correlationId"), self.source) or {}
        if old_id.get("location") != new_id.get("location"):
            # Requesters match replies (and consumers group messages) by this value.
            self.out.add(
                "message-correlation-id-changed",
                join(loc, "correlationId"),
                f"correlationId location {shown(old_id.get('location'))} -> "
                f"{shown(new_id.get('location'))}",
            )
        if "headers" in old or "headers" in new:
            self.schemas.compare(
                old.get("headers", {}), new.get("headers", {}), join(loc, "headers"), ctx
            )
        self._payload(old.get("payload", {}), new.get("payload", {}), join(loc, "payload"), ctx)
        # Servicewire's generator documents the Avro encoding of a payload beside it.
        if "x-avro-payload" in old and "x-avro-payload" in new:
            self._payload(
                old["x-avro-payload"], new["x-avro-payload"], join(loc, "x-avro-payload"), ctx
            )

    def _effective(self, doc: dict[str, Any], raw: Any) -> dict[str, Any]:
        """A message as readers see it: its traits applied, the default content type filled.

        Traits are merged in order and the message's own fields win (AsyncAPI 3.0), so
        moving headers into a trait, or a content type to ``defaultContentType``, is no
        change.
        """
        message = resolve(doc, raw, self.source) or {}
        if not isinstance(message, dict):
            raise DocumentError(self.source, f"a message must be an object, got {shown(message)}")
        merged: dict[str, Any] = {}
        for trait in message.get("traits") or []:
            merged = _merge_patch(merged, resolve(doc, trait, self.source) or {})
        merged = _merge_patch(merged, {k: v for k, v in message.items() if k != "traits"})
        if "contentType" not in merged and "defaultContentType" in doc:
            merged["contentType"] = doc["defaultContentType"]
        return merged

    def _payload(self, old_raw: Any, new_raw: Any, loc: str, ctx: Context) -> None:
        old = resolve(self.old, old_raw, self.source)
        new = resolve(self.new, new_raw, self.source)
        old_format, old_schema = _unwrap(old)
        new_format, new_schema = _unwrap(new)
        if _is_avro(old_format) != _is_avro(new_format):
            self.out.add(
                "message-payload-format-changed",
                join(loc, "schemaFormat"),
                f"schema format {old_format} -> {new_format}",
            )
            return
        if _is_avro(old_format):
            report = compare_avro(old_schema, new_schema, self.policy, self.source)
            for change in report.changes:
                code = change.code
                if ctx == "receive" and code in READER_SAFE:
                    # Only the new consumer reads: it must read what old producers
                    # write, and a wider reader schema does.
                    code = f"receive-{code}"
                self.out.add(code, f"{join(loc, 'schema')}#{change.location}", change.message)
            return
        self.schemas.compare(old_schema, new_schema, loc, ctx)


# Avro changes a new reader resolves against an old writer (Avro's resolution rules): on
# a channel the application only receives on, nobody reads with the new schema but it.
READER_SAFE = frozenset(
    {
        "type-promoted",  # int -> long: the reader promotes what the writer wrote
        "union-branch-added",  # the reader accepts more branches
        "enum-symbol-added",  # the writer only writes symbols the reader knows
        "field-removed",  # the reader skips a field the writer still writes
    }
)


def _merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """JSON Merge Patch (RFC 7386) of ``patch`` onto ``target``, as traits are applied."""
    out = dict(target)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge_patch(out[key], value)
        else:
            out[key] = value
    return out


def _server_list(servers: Any) -> list[dict[str, str]]:
    """AsyncAPI 3 servers (``host``, ``protocol``, ``pathname``) as URLs, to compare
    them with the OpenAPI server rules (a moved pathname is a changed base path)."""
    if not isinstance(servers, dict):
        return []
    found = []
    for server in servers.values():
        if isinstance(server, dict) and "host" in server:
            url = f"{server.get('protocol', '')}://{server['host']}{server.get('pathname', '')}"
            found.append({"url": url})
    return found


def _parameter_schema(parameter: dict[str, Any]) -> dict[str, Any]:
    """An AsyncAPI 3 Parameter Object as the string schema it describes."""
    keys = ("enum", "default", "description", "examples")
    return {"type": "string", **{k: parameter[k] for k in keys if k in parameter}}


def _address_shape(channel: dict[str, Any], key: str) -> str:
    """``orders.{orderId}`` -> ``orders.{}``: parameter names are invisible on the wire.

    A channel without an address (AsyncAPI 3: unknown or dynamic) is known by its key.
    """
    address = channel.get("address")
    if not isinstance(address, str):
        return f"#{key}"
    return _PARAM.sub("{}", address)


def _match_channels(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, str]]:
    """Pair old and new channels: by key, or by address when the key was renamed."""
    pairs = [(name, name) for name in sorted(old.keys() & new.keys())]
    old_rest = {_address_shape(old[n] or {}, n): n for n in sorted(old.keys() - new.keys())}
    new_rest = {_address_shape(new[n] or {}, n): n for n in sorted(new.keys() - old.keys())}
    for shape in sorted(old_rest.keys() & new_rest.keys()):
        if not shape.startswith("#"):
            pairs.append((old_rest[shape], new_rest[shape]))
    return pairs


def _unwrap(payload: Any) -> tuple[str, Any]:
    """A Multi Format Schema Object ``{schemaFormat, schema}`` -> (format, schema)."""
    if isinstance(payload, dict) and "schemaFormat" in payload and "schema" in payload:
        return str(payload["schemaFormat"]), payload["schema"]
    return "application/schema+json", payload


def _is_avro(schema_format: str) -> bool:
    return "avro" in schema_format.lower()
