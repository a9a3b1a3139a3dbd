"""Servers and security requirements, at the places the corpus does not reach."""

from __future__ import annotations

import copy
from typing import Any

from servicewire.evolution import Bump, Policy
from servicewire.evolution.openapi import compare_openapi
from servicewire.evolution.openapi_access import compare_security, compare_servers
from servicewire.evolution.policy import Collector

DOC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Orders", "version": "1.0.0"},
    "security": [{"oauth": ["orders:read"]}],
    "paths": {
        "/health": {"get": {"security": [], "responses": {"200": {"description": "up"}}}},
        "/orders": {"get": {"responses": {"200": {"description": "orders"}}}},
    },
}


def _codes(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, str]]:
    report = compare_openapi(old, new, Policy())
    return sorted((c.code, c.location) for c in report.changes)


def test_an_operation_with_empty_security_stays_public_when_the_document_tightens() -> None:
    new = copy.deepcopy(DOC)
    new["security"] = [{"oauth": ["orders:read", "orders:write"]}]
    assert _codes(DOC, new) == [("security-scope-added", "/paths/~1orders/get/security/oauth")]


def test_dropping_an_operations_own_empty_security_secures_it() -> None:
    new = copy.deepcopy(DOC)
    del new["paths"]["/health"]["get"]["security"]
    assert _codes(DOC, new) == [("security-requirement-added", "/paths/~1health/get/security")]


def test_securing_nothing_any_more_is_minor() -> None:
    out = Collector("openapi", Policy())
    compare_security(out, [{"oauth": []}], [{"oauth": []}, {}], "/security")
    assert out.report.codes() == ["security-requirement-removed"]
    assert out.report.bump is Bump.MINOR


def test_server_variables_take_their_defaults() -> None:
    out = Collector("openapi", Policy())
    templated = [
        {"url": "https://{region}.ftgo.example/v1", "variables": {"region": {"default": "eu"}}}
    ]
    compare_servers(out, templated, [{"url": "https://eu.ftgo.example/v1/"}], "/servers")
    assert out.report.changes == []
    compare_servers(out, templated, [{"url": "https://us.ftgo.example/v1"}], "/servers")
    assert out.report.codes() == ["server-added", "server-removed"]


def test_no_servers_means_slash_and_a_path_may_keep_its_place() -> None:
    new = copy.deepcopy(DOC)
    new["servers"] = [{"url": "/orders-api"}]  # the API moves from "/" ...
    new["paths"]["/health"]["servers"] = [{"url": "/"}]  # ... but /health stays put
    assert _codes(DOC, new) == [("server-base-path-changed", "/servers")]
    new["paths"]["/health"]["servers"] = [{"url": "/status"}]
    assert _codes(DOC, new) == [
        ("server-base-path-changed", "/paths/~1health/get/servers"),
        ("server-base-path-changed", "/servers"),
    ]
