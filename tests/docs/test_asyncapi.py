"""AsyncAPI 3.0 generation from code, the HTML page, and `servicewire docs asyncapi`."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from servicewire.cli.main import main
from servicewire.codecs.avro import avro_schema
from servicewire.evolution.asyncapi import compare_asyncapi
from servicewire.evolution.generate import ChannelUse, build_asyncapi, render_html
from servicewire.evolution.policy import Policy
from servicewire.evolution.refs import lookup
from tests.docs import sample


def _doc() -> dict[str, Any]:
    return build_asyncapi("Kitchen", "1.4.0", sample.USES, description="Prepares orders.")


def test_document_shape() -> None:
    doc = _doc()
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"] == {
        "title": "Kitchen",
        "version": "1.4.0",
        "description": "Prepares orders.",
    }
    assert set(doc["channels"]) == {"docs-kitchen", "reply-to", "docs.kitchen.events"}
    assert doc["channels"]["docs-kitchen"]["address"] == "docs-kitchen"
    assert doc["channels"]["reply-to"]["address"] is None  # dynamic: the replyto header
    ops = doc["operations"]
    assert ops["receive-docs-kitchen"]["action"] == "receive"
    assert ops["receive-docs-kitchen"]["description"] == "Commands to the kitchen"
    assert ops["send-docs.kitchen.events"]["action"] == "send"
    assert set(doc["components"]["messages"]) == {
        "CreateTicket",
        "TicketCreated",
        "TicketRefused",
        "TicketAcceptedV2",
    }


def test_every_reference_resolves() -> None:
    doc = _doc()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                assert lookup(doc, node["$ref"], "doc") is not None
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    json.dumps(doc)  # plain JSON all the way down


def test_message_payloads_headers_and_avro() -> None:
    message = _doc()["components"]["messages"]["CreateTicket"]
    assert message["name"] == "docs.kitchen.CreateTicket"
    assert message["summary"] == "Ask the kitchen to prepare an order."
    assert message["x-servicewire"]["version"] == "1.2.0"
    assert message["x-servicewire"]["partitionKey"] == "order_id"
    payload = lookup(_doc(), message["payload"]["$ref"], "doc")
    assert payload["required"] == ["order_id"]
    assert set(payload["properties"]) == {"order_id", "items", "priority"}
    assert message["x-avro-payload"]["schema"] == avro_schema(sample.CreateTicket)
    assert message["x-avro-payload"]["schemaFormat"].startswith("application/vnd.apache.avro")
    narrowed = message["headers"]["allOf"][1]["properties"]
    assert narrowed["type"]["const"] == "docs.kitchen.CreateTicket"
    assert narrowed["messagekind"]["const"] == "command"
    assert narrowed["typeversion"]["pattern"].startswith("^1")
    shared = _doc()["components"]["schemas"]["CloudEventsHeaders"]
    assert {"id", "specversion", "source", "type"} <= set(shared["required"])
    assert {"datacontenttype", "correlationid", "traceparent"} <= set(shared["properties"])
    failure = _doc()["components"]["messages"]["TicketRefused"]["headers"]["allOf"][1]
    assert failure["properties"]["replyoutcome"]["const"] == "failure"


def test_generated_documents_feed_the_checker() -> None:
    from pydantic import create_model

    newer = create_model(
        "CreateTicket",
        __base__=sample.CreateTicket,
        note=(str, ""),
    )
    uses = [ChannelUse("docs-kitchen", "receive", [newer])]
    old = build_asyncapi(
        "Kitchen", "1.0.0", [ChannelUse("docs-kitchen", "receive", [sample.CreateTicket])]
    )
    new = build_asyncapi("Kitchen", "1.1.0", uses)
    report = compare_asyncapi(old, new, Policy())
    assert report.bump.label == "MINOR"
    # The service only receives on the channel, so payloads are judged from the reader.
    assert {"receive-property-added-optional", "field-added-with-default"} <= set(report.codes())


def test_html_is_self_contained_and_escaped() -> None:
    page = render_html(_doc())
    assert page.startswith("<!DOCTYPE html>")
    for text in (
        "Kitchen",
        "TicketAcceptedV2",
        "docs.kitchen.CreateTicket",
        "order_id",
        "Avro schema",
    ):
        assert text in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "http://" not in page and "https://" not in page and "src=" not in page

    class Checker(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.stack: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag not in ("meta", "br", "hr", "img", "link", "input"):
                self.stack.append(tag)

        def handle_endtag(self, tag: str) -> None:
            assert self.stack and self.stack[-1] == tag, (tag, self.stack[-5:])
            self.stack.pop()

    checker = Checker()
    checker.feed(page)
    assert checker.stack == []


def test_cli_writes_json_and_html(tmp_path: Path) -> None:
    out, page = tmp_path / "kitchen.json", tmp_path / "kitchen.html"
    code = main(
        [
            "docs",
            "asyncapi",
            "tests.docs.sample:USES",
            "--output",
            str(out),
            "--html",
            str(page),
            "--version",
            "1.4.0",
            "--title",
            "Kitchen",
        ]
    )
    assert code == 0
    assert json.loads(out.read_text()) == _doc() | {
        "info": {"title": "Kitchen", "version": "1.4.0"}
    }
    assert "TicketAcceptedV2" in page.read_text()


def test_cli_from_a_service_factory(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["docs", "asyncapi", "tests.docs.sample:kitchen_service"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["info"]["title"] == "docs-kitchen-service"
    assert doc["operations"]["receive-docs-kitchen"]["action"] == "receive"
    assert "send-docs.kitchen.events" in doc["operations"]


def test_cli_yaml_output(tmp_path: Path) -> None:
    import yaml

    out = tmp_path / "kitchen.yaml"
    assert main(["docs", "asyncapi", "tests.docs.sample:USES", "-o", str(out)]) == 0
    assert yaml.safe_load(out.read_text())["asyncapi"] == "3.0.0"


@pytest.mark.parametrize(
    "target",
    [
        "tests.docs.sample",
        "tests.docs.nowhere:USES",
        "tests.docs.sample:MISSING",
        "tests.docs.sample:NOT_USES",
    ],
)
def test_cli_bad_target(target: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["docs", "asyncapi", target]) == 3
    assert "servicewire docs:" in capsys.readouterr().err


def test_ftgo_services_document() -> None:
    from ftgo.order.service import create_order_service

    service, _ = create_order_service("sqlite://", "memory://")
    doc = build_asyncapi("Order Service", "1.0.0", service.channel_uses())
    assert "OrderCreated" in doc["components"]["messages"]
    assert any(op["action"] == "receive" for op in doc["operations"].values())
    assert "<html" in render_html(doc)
