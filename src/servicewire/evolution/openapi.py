"""Compare two OpenAPI 3.0/3.1 documents from the point of view of existing clients.

A change is judged by whether every client written against the old document keeps
working against a server that implements the new one: operations, parameters and
request bodies are what clients *send* (``request`` context), responses what they
*read* (``response`` context)::

    report = compare_openapi(old_doc, new_doc, Policy())
    report.bump           # Bump.MAJOR when a required query parameter was added

Path templates are matched by shape, so renaming ``/orders/{id}`` to
``/orders/{orderId}`` (which no client can see) is not a change. Servers and security
requirements are judged in :mod:`servicewire.evolution.openapi_access`; OpenAPI 3.1
webhooks, which the server calls, are judged with the directions swapped.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from servicewire.evolution.jsonschema import SchemaDiff, canonical
from servicewire.evolution.model import DocumentError, Report, join, shown
from servicewire.evolution.openapi_access import (
    compare_security,
    compare_security_schemes,
    compare_servers,
    effective_security,
)
from servicewire.evolution.policy import Collector, Policy
from servicewire.evolution.refs import resolve

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_PARAM = re.compile(r"\{[^}/]+\}")
_DOC_KEYS = ("summary", "description")


def check_openapi(doc: Any, source: str) -> None:
    """Raise :class:`DocumentError` unless ``doc`` looks like OpenAPI 3.x."""
    if not isinstance(doc, dict) or not str(doc.get("openapi", "")).startswith("3."):
        raise DocumentError(source, "not an OpenAPI 3.0/3.1 document (no 'openapi: 3.x')")
    if not isinstance(doc.get("paths", {}), dict):
        raise DocumentError(source, "'paths' must be an object")


def compare_openapi(old: Any, new: Any, policy: Policy, source: str = "openapi") -> Report:
    """Every difference between two OpenAPI documents, with the bump each needs."""
    check_openapi(old, source)
    check_openapi(new, source)
    return _OpenApiDiff(old, new, policy, source).run()


class _OpenApiDiff:
    def __init__(
        self, old: dict[str, Any], new: dict[str, Any], policy: Policy, source: str
    ) -> None:
        self.old = old
        self.new = new
        self.source = source
        self.out = Collector("openapi", policy)
        self.schemas = SchemaDiff(self.out, old, new, source)

    def run(self) -> Report:
        for name in ("title", "description", "summary"):
            if canonical(self.old.get("info", {}).get(name)) != canonical(
                self.new.get("info", {}).get(name)
            ):
                self.out.add("documentation-changed", join("/info", name), f"info.{name} changed")
        compare_servers(self.out, self.old.get("servers"), self.new.get("servers"), "/servers")
        compare_security_schemes(
            self.out,
            (self.old.get("components") or {}).get("securitySchemes"),
            (self.new.get("components") or {}).get("securitySchemes"),
            "/components/securitySchemes",
        )
        self._pair("paths", "operation", self._path_operation)
        self._pair("webhooks", "webhook", self._webhook)
        return self.out.report

    def _pair(
        self,
        section: str,
        noun: str,
        compare: Callable[[dict[str, Any], tuple[str, str, dict[str, Any]], str], None],
    ) -> None:
        """Report operations of ``section`` added or removed; ``compare`` the others."""
        old_ops = self._operations(self.old, section)
        new_ops = self._operations(self.new, section)
        for key, (path, method, _) in new_ops.items():
            if key not in old_ops:
                where = join(f"/{section}", path, method)
                self.out.add(f"{noun}-added", where, f"{noun} {method.upper()} {path} added")
        for key, (path, method, old_op) in old_ops.items():
            if key not in new_ops:
                where = join(f"/{section}", path, method)
                self.out.add(f"{noun}-removed", where, f"{noun} {method.upper()} {path} removed")
                continue
            compare(old_op, new_ops[key], path)

    def _path_operation(
        self, old_op: dict[str, Any], new: tuple[str, str, dict[str, Any]], old_path: str
    ) -> None:
        new_path, method, new_op = new
        self._operation(old_op, new_op, join("/paths", new_path, method), old_path, new_path)

    def _webhook(
        self, old: dict[str, Any], new_hook: tuple[str, str, dict[str, Any]], _: str
    ) -> None:
        """OpenAPI 3.1 webhooks: the server calls the client, so the directions swap.

        The server writes the webhook's parameters and body and reads its responses.
        """
        name, method, new = new_hook
        self._reverse_operation(old, new, join("/webhooks", name, method), "webhook")

    def _reverse_operation(
        self, old: dict[str, Any], new: dict[str, Any], loc: str, noun: str
    ) -> None:
        """An operation the server calls (a webhook or a callback): directions swapped."""
        for key in (*_DOC_KEYS, "operationId", "tags"):
            if canonical(old.get(key)) != canonical(new.get(key)):
                self.out.add("documentation-changed", join(loc, key), f"{key} changed")
        params = join(loc, "parameters")
        for key in new["parameters"].keys() - old["parameters"].keys():
            param = new["parameters"][key]
            where = join(params, param["in"], param["name"])
            self.out.add(
                f"{noun}-parameter-added", where, f"parameter {shown(param['name'])} added"
            )
        for key, param in old["parameters"].items():
            where = join(params, param["in"], param["name"])
            if key not in new["parameters"]:
                self.out.add(
                    f"{noun}-parameter-removed", where, f"parameter {shown(param['name'])} removed"
                )
                continue
            other = new["parameters"][key]
            self.schemas.compare(
                param.get("schema", {}), other.get("schema", {}), join(where, "schema"), "response"
            )
        old_body = resolve(self.old, old.get("requestBody"), self.source) or {}
        new_body = resolve(self.new, new.get("requestBody"), self.source) or {}
        self._content(
            old_body.get("content") or {},
            new_body.get("content") or {},
            join(loc, "requestBody", "content"),
            "response",
        )
        old_resps = {str(k): v for k, v in (old.get("responses") or {}).items()}
        new_resps = {str(k): v for k, v in (new.get("responses") or {}).items()}
        for status in sorted(new_resps.keys() - old_resps.keys()):
            where = join(loc, "responses", status)
            self.out.add(f"{noun}-response-added", where, f"response {status} accepted")
        for status in sorted(old_resps.keys() - new_resps.keys()):
            where = join(loc, "responses", status)
            self.out.add(f"{noun}-response-removed", where, f"response {status} no longer accepted")
        for status in sorted(old_resps.keys() & new_resps.keys()):
            old_resp = resolve(self.old, old_resps[status], self.source) or {}
            new_resp = resolve(self.new, new_resps[status], self.source) or {}
            self._content(
                old_resp.get("content") or {},
                new_resp.get("content") or {},
                join(loc, "responses", status, "content"),
                "request",
            )

    def _operations(
        self, doc: dict[str, Any], section: str = "paths", items: Any = None
    ) -> dict[tuple[str, str], tuple[str, str, dict[str, Any]]]:
        """Operations keyed by (path shape, method); path-level parameters folded in.

        Each carries its effective ``security`` and, when it or its path sets them, its
        own ``servers`` (``None`` when the document's servers apply).
        """
        found: dict[tuple[str, str], tuple[str, str, dict[str, Any]]] = {}
        # ``items``: path items that are not a section of the document (a callback's).
        section_items = items if items is not None else doc.get(section) or {}
        if not isinstance(section_items, dict):
            raise DocumentError(self.source, f"'{section}' must be an object")
        for path, item in section_items.items():
            item = resolve(doc, item, self.source)
            if not isinstance(item, dict):
                raise DocumentError(self.source, f"path item {shown(path)} must be an object")
            shared = item.get("parameters", [])
            for method in METHODS:
                op = item.get(method)
                if not isinstance(op, dict):
                    continue
                merged = dict(op)
                merged["parameters"] = self._params(doc, shared, op.get("parameters", []), path)
                merged["security"] = effective_security(doc, op)
                merged["servers"] = op.get("servers") or item.get("servers")
                found[(_PARAM.sub("{}", path), method)] = (path, method, merged)
        return found

    def _params(
        self, doc: dict[str, Any], shared: list[Any], own: list[Any], path: str
    ) -> dict[tuple[str, str], dict[str, Any]]:
        """Parameters keyed by (in, name); path parameters by their position in the path."""
        names = [m.group(0)[1:-1] for m in _PARAM.finditer(path)]
        out: dict[tuple[str, str], dict[str, Any]] = {}
        for raw in [*shared, *own]:  # operation-level parameters override path-level ones
            param = resolve(doc, raw, self.source)
            if not isinstance(param, dict) or "name" not in param or "in" not in param:
                raise DocumentError(self.source, f"bad parameter under {shown(path)}: {shown(raw)}")
            name = str(param["name"])
            if param["in"] == "path" and name in names:
                name = f"#{names.index(name)}"
            out[(str(param["in"]), name)] = param
        return out

    def _operation(
        self, old: dict[str, Any], new: dict[str, Any], loc: str, old_path: str, new_path: str
    ) -> None:
        for key in (*_DOC_KEYS, "operationId", "tags"):
            if canonical(old.get(key)) != canonical(new.get(key)):
                self.out.add("documentation-changed", join(loc, key), f"{key} changed")
        if new.get("deprecated") and not old.get("deprecated"):
            self.out.add("operation-deprecated", join(loc, "deprecated"), "operation deprecated")
        compare_security(self.out, old["security"], new["security"], join(loc, "security"))
        if old["servers"] or new["servers"]:
            compare_servers(
                self.out,
                old["servers"] or self.old.get("servers"),
                new["servers"] or self.new.get("servers"),
                join(loc, "servers"),
            )
        self._parameters(old["parameters"], new["parameters"], join(loc, "parameters"))
        self._request_body(old.get("requestBody"), new.get("requestBody"), join(loc, "requestBody"))
        self._responses(
            old.get("responses") or {}, new.get("responses") or {}, join(loc, "responses")
        )
        self._callbacks(old.get("callbacks") or {}, new.get("callbacks") or {}, loc)

    def _callbacks(self, old: dict[str, Any], new: dict[str, Any], loc: str) -> None:
        """An operation's callbacks: requests the server makes to a URL the client gave.

        Keyed by callback name, runtime expression and method; each is judged like a
        webhook (the server writes the body, the client reads it and answers).
        """
        old_ops = self._callback_operations(self.old, old)
        new_ops = self._callback_operations(self.new, new)
        for key in sorted(new_ops.keys() - old_ops.keys()):
            where = join(loc, "callbacks", *key)
            what = f"callback {key[0]} {key[2].upper()} {key[1]} added"
            self.out.add("callback-added", where, what)
        for key in sorted(old_ops.keys() - new_ops.keys()):
            where = join(loc, "callbacks", *key)
            what = f"callback {key[0]} {key[2].upper()} {key[1]} removed"
            self.out.add("callback-removed", where, what)
        for key in sorted(old_ops.keys() & new_ops.keys()):
            where = join(loc, "callbacks", *key)
            self._reverse_operation(old_ops[key], new_ops[key], where, "callback")

    def _callback_operations(
        self, doc: dict[str, Any], callbacks: dict[str, Any]
    ) -> dict[tuple[str, str, str], dict[str, Any]]:
        found: dict[tuple[str, str, str], dict[str, Any]] = {}
        for name, raw in callbacks.items():
            callback = resolve(doc, raw, self.source) or {}
            for expression, item in callback.items():
                ops = self._operations(doc, "callbacks", {str(expression): item})
                for (_, method), (_, _, op) in ops.items():
                    found[(str(name), str(expression), method)] = op
        return found

    def _parameters(
        self,
        old: dict[tuple[str, str], dict[str, Any]],
        new: dict[tuple[str, str], dict[str, Any]],
        loc: str,
    ) -> None:
        for key, param in new.items():
            if key in old:
                continue
            where = join(loc, param["in"], param["name"])
            if param.get("required") or param["in"] == "path":
                self.out.add(
                    "request-parameter-added-required",
                    where,
                    f"required {param['in']} parameter {shown(param['name'])} added",
                )
            else:
                self.out.add(
                    "request-parameter-added-optional",
                    where,
                    f"optional {param['in']} parameter {shown(param['name'])} added",
                )
        for key, param in old.items():
            where = join(loc, param["in"], param["name"])
            if key not in new:
                self.out.add(
                    "request-parameter-removed",
                    where,
                    f"{param['in']} parameter {shown(param['name'])} removed",
                )
                continue
            other = new[key]
            if bool(other.get("required")) and not param.get("required"):
                self.out.add(
                    "request-parameter-became-required",
                    where,
                    f"parameter {shown(param['name'])} became required",
                )
            elif param.get("required") and not other.get("required") and param["in"] != "path":
                self.out.add(
                    "request-parameter-became-optional",
                    where,
                    f"parameter {shown(param['name'])} became optional",
                )
            # A parameter described by `content` has no style; its media type says it all.
            if "content" not in param and "content" not in other:
                (style_a, explode_a), (style_b, explode_b) = _style(param), _style(other)
                if (style_a, explode_a) != (style_b, explode_b):
                    self.out.add(
                        "request-parameter-style-changed",
                        join(where, "style"),
                        f"style: {style_a}, explode: {shown(explode_a)} became "
                        f"style: {style_b}, explode: {shown(explode_b)}",
                    )
            for doc_key in ("description", "example", "examples"):
                if canonical(param.get(doc_key)) != canonical(other.get(doc_key)):
                    self.out.add(
                        "documentation-changed", join(where, doc_key), f"{doc_key} changed"
                    )
            if "schema" in param or "schema" in other:
                self.schemas.compare(
                    param.get("schema", {}),
                    other.get("schema", {}),
                    join(where, "schema"),
                    "request",
                )
            if "content" in param or "content" in other:
                # A parameter may be described by a media type instead of a schema.
                self._content(
                    param.get("content") or {},
                    other.get("content") or {},
                    join(where, "content"),
                    "request",
                )

    def _request_body(self, old_raw: Any, new_raw: Any, loc: str) -> None:
        old = resolve(self.old, old_raw, self.source) if old_raw is not None else None
        new = resolve(self.new, new_raw, self.source) if new_raw is not None else None
        if old is None and new is None:
            return
        if old is None:
            assert new is not None
            required = bool(new.get("required"))
            code = "request-body-added-required" if required else "request-body-added-optional"
            self.out.add(code, loc, "a request body was added")
            return
        if new is None:
            self.out.add("request-body-removed", loc, "the request body was removed")
            return
        if new.get("required") and not old.get("required"):
            self.out.add("request-body-became-required", loc, "the request body became required")
        elif old.get("required") and not new.get("required"):
            self.out.add("request-body-became-optional", loc, "the request body became optional")
        if canonical(old.get("description")) != canonical(new.get("description")):
            self.out.add("documentation-changed", join(loc, "description"), "description changed")
        self._content(
            old.get("content") or {}, new.get("content") or {}, join(loc, "content"), "request"
        )

    def _content(self, old: dict[str, Any], new: dict[str, Any], loc: str, ctx: str) -> None:
        side = "request" if ctx == "request" else "response"
        for media in new.keys() - old.keys():
            self.out.add(f"{side}-media-type-added", join(loc, media), f"media type {media} added")
        for media in old.keys() - new.keys():
            self.out.add(
                f"{side}-media-type-removed", join(loc, media), f"media type {media} removed"
            )
        for media in sorted(old.keys() & new.keys()):
            old_schema = (old[media] or {}).get("schema", {})
            new_schema = (new[media] or {}).get("schema", {})
            self.schemas.compare(
                old_schema,
                new_schema,
                join(loc, media, "schema"),
                "request" if ctx == "request" else "response",
            )

    def _responses(self, old: dict[Any, Any], new: dict[Any, Any], loc: str) -> None:
        # YAML reads an unquoted 200 as a number; compare status codes as text.
        old = {str(k): v for k, v in old.items()}
        new = {str(k): v for k, v in new.items()}
        for status in new.keys() - old.keys():
            self.out.add("response-status-added", join(loc, status), f"response {status} added")
        for status in old.keys() - new.keys():
            success = str(status).startswith("2") or str(status) == "default"
            code = "response-status-removed" if success else "response-error-status-removed"
            self.out.add(code, join(loc, status), f"response {status} removed")
        for status in sorted(old.keys() & new.keys(), key=str):
            where = join(loc, status)
            old_resp = resolve(self.old, old[status], self.source) or {}
            new_resp = resolve(self.new, new[status], self.source) or {}
            if canonical(old_resp.get("description")) != canonical(new_resp.get("description")):
                self.out.add(
                    "documentation-changed", join(where, "description"), "description changed"
                )
            old_headers = old_resp.get("headers") or {}
            new_headers = new_resp.get("headers") or {}
            for name in new_headers.keys() - old_headers.keys():
                self.out.add(
                    "response-header-added", join(where, "headers", name), f"header {name} added"
                )
            for name in old_headers.keys() - new_headers.keys():
                self.out.add(
                    "response-header-removed",
                    join(where, "headers", name),
                    f"header {name} removed",
                )
            for name in sorted(old_headers.keys() & new_headers.keys()):
                old_h = resolve(self.old, old_headers[name], self.source) or {}
                new_h = resolve(self.new, new_headers[name], self.source) or {}
                # Clients read response headers: one that may now be absent breaks those
                # that count on it; one that is now always sent is a new promise.
                if bool(old_h.get("required")) != bool(new_h.get("required")):
                    became = "required" if new_h.get("required") else "optional"
                    self.out.add(
                        f"response-header-became-{became}",
                        join(where, "headers", name, "required"),
                        f"header {name} became {became}",
                    )
                self.schemas.compare(
                    old_h.get("schema", {}),
                    new_h.get("schema", {}),
                    join(where, "headers", name, "schema"),
                    "response",
                )
            self._content(
                old_resp.get("content") or {},
                new_resp.get("content") or {},
                join(where, "content"),
                "response",
            )


def _style(param: dict[str, Any]) -> tuple[str, bool]:
    """The effective ``style`` and ``explode`` of a parameter, the spec's defaults applied.

    ``query`` and ``cookie`` default to ``form``, ``path`` and ``header`` to ``simple``;
    ``explode`` defaults to true for ``form`` only.
    """
    default = "form" if param.get("in") in ("query", "cookie") else "simple"
    style = str(param.get("style", default))
    return style, bool(param.get("explode", style == "form"))
