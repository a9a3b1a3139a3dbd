"""How a client reaches and authenticates to an OpenAPI operation: servers and security.

Both are judged from the client's side, because the client is what must keep working:
a server that moves, or a requirement the client cannot meet, breaks every call::

    out = Collector("openapi", Policy())
    compare_security(out, [], [{"oauth": ["orders:read"]}], "/paths/~1orders/get/security")
    out.report.codes()    # ['security-requirement-added'] (MAJOR: anonymous calls now fail)

    compare_servers(out, [{"url": "https://api.example.com/v1"}],
                    [{"url": "https://api.example.com/v2"}], "/servers")
    # 'server-base-path-changed' (MAJOR: every old URL now misses)
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from servicewire.evolution.jsonschema import canonical
from servicewire.evolution.model import join, shown
from servicewire.evolution.policy import Collector

# When a document has no `servers`, the spec says the API lives at "/".
DEFAULT_SERVERS: list[dict[str, Any]] = [{"url": "/"}]
_VARIABLE = re.compile(r"\{([^}]+)\}")


def effective_security(doc: dict[str, Any], op: dict[str, Any]) -> list[dict[str, list[str]]]:
    """The requirement that applies: the operation's own ``security`` (even ``[]``) wins."""
    raw = op["security"] if "security" in op else doc.get("security")
    alternatives: list[dict[str, list[str]]] = []
    for alt in raw or []:
        if isinstance(alt, dict):
            alternatives.append({str(k): [str(s) for s in (v or [])] for k, v in alt.items()})
    return alternatives


def _allows_anonymous(alternatives: list[dict[str, list[str]]]) -> bool:
    # No requirement at all, or an empty alternative `{}`, lets a client call unauthenticated.
    return not alternatives or any(not alt for alt in alternatives)


def compare_security(
    out: Collector,
    old: list[dict[str, list[str]]],
    new: list[dict[str, list[str]]],
    loc: str,
) -> None:
    """Report how the security requirement of one operation changed.

    Alternatives (the entries of the list) are OR-ed and matched by their set of scheme
    names; the schemes inside one alternative are AND-ed, each with the scopes it needs.
    """
    old_open = _allows_anonymous(old)
    new_open = _allows_anonymous(new)
    if old_open and not new_open:
        out.add("security-requirement-added", loc, "a public operation now requires security")
        return
    if new_open and not old_open:
        out.add("security-requirement-removed", loc, "the operation no longer requires security")
        return
    old_alts = {frozenset(a): a for a in old if a}
    new_alts = {frozenset(a): a for a in new if a}
    for key in sorted(new_alts.keys() - old_alts.keys(), key=sorted):
        names = " + ".join(sorted(key))
        out.add("security-alternative-added", loc, f"alternative requirement {names} added")
    if not new_open:
        for key in sorted(old_alts.keys() - new_alts.keys(), key=sorted):
            names = " + ".join(sorted(key))
            out.add("security-alternative-removed", loc, f"alternative requirement {names} removed")
    for key in sorted(old_alts.keys() & new_alts.keys(), key=sorted):
        for scheme in sorted(key):
            where = join(loc, scheme)
            before = set(old_alts[key][scheme])
            after = set(new_alts[key][scheme])
            for scope in sorted(after - before):
                out.add(
                    "security-scope-added", where, f"scope {shown(scope)} of {scheme} now required"
                )
            for scope in sorted(before - after):
                out.add(
                    "security-scope-removed",
                    where,
                    f"scope {shown(scope)} of {scheme} no longer needed",
                )


def compare_security_schemes(out: Collector, old: Any, new: Any, loc: str) -> None:
    """Report a scheme both versions define that a client must now use differently.

    A new header name, token URL, flow or scheme type means old clients send the wrong
    credentials. Descriptions and the catalogue of a flow's scopes are left out: which
    scopes an operation needs is judged on its requirement.
    """
    old_schemes = old if isinstance(old, dict) else {}
    new_schemes = new if isinstance(new, dict) else {}
    for name in sorted(old_schemes.keys() & new_schemes.keys()):
        if _scheme_shape(old_schemes[name]) != _scheme_shape(new_schemes[name]):
            out.add("security-scheme-changed", join(loc, name), f"security scheme {name} changed")


def _scheme_shape(scheme: Any) -> str:
    if not isinstance(scheme, dict):
        return canonical(scheme)
    shape = {k: v for k, v in scheme.items() if k != "description"}
    flows = shape.get("flows")
    if isinstance(flows, dict):
        shape["flows"] = {
            kind: {k: v for k, v in flow.items() if k != "scopes"}
            if isinstance(flow, dict)
            else flow
            for kind, flow in flows.items()
        }
    return canonical(shape)


def server_urls(servers: Any) -> list[str]:
    """Each server's URL with its variables replaced by their defaults."""
    urls: list[str] = []
    for server in servers or DEFAULT_SERVERS:
        if not isinstance(server, dict) or "url" not in server:
            continue
        variables = server.get("variables") or {}

        def default(match: re.Match[str], variables: Any = variables) -> str:
            spec = variables.get(match.group(1)) if isinstance(variables, dict) else None
            return str(spec.get("default", match.group(0))) if isinstance(spec, dict) else ""

        url = _VARIABLE.sub(default, str(server["url"]))
        urls.append(url.rstrip("/") or "/")
    return urls


def compare_servers(out: Collector, old: Any, new: Any, loc: str) -> None:
    """Report servers added, removed, or moved to another base path on the same host."""
    old_urls = server_urls(old)
    new_urls = server_urls(new)
    added = [u for u in new_urls if u not in old_urls]
    for url in (u for u in old_urls if u not in new_urls):
        origin = urlsplit(url)[:2]
        moved = next((u for u in added if urlsplit(u)[:2] == origin), None)
        if moved is not None:
            added.remove(moved)
            out.add("server-base-path-changed", loc, f"server {url} moved to {moved}")
        else:
            out.add("server-removed", loc, f"server {url} removed")
    for url in added:
        out.add("server-added", loc, f"server {url} added")
