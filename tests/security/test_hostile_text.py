"""The text rule at every edge: no NUL, no lone UTF-16 surrogate (issue 19).

Both are valid JSON escapes and valid in a Python ``str``; PostgreSQL refuses NUL in
text and no store can take a surrogate (it is not UTF-8). Here: every codec refuses
them as a :class:`DecodeError` naming the field; a :class:`TextSafeModel` finds them
at any depth; REST refuses them in a header as in a body (422, naming it); both
command lines exit 2. The store-backed cases are tests/ftgo/test_unsafe_text.py
(REST, gRPC) and tests/service/test_unsafe_text_messages.py (the pipeline).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, ValidationError

from servicewire.cli.main import main as servicewire_main
from servicewire.codecs.registry import default_codecs
from servicewire.errors import DecodeError
from servicewire.messaging import Command, SafeText, TextSafeModel, find_unsafe_text
from servicewire.rest import create_app, versioned_router

CODECS = {codec.format_name: codec for codec in default_codecs()}


class Note(Command, name="test.text.Note", version="1.0.0", channel="test-text"):
    title: str
    tags: list[str] = []


@pytest.mark.parametrize("fmt", sorted(CODECS))
@pytest.mark.parametrize("field", ["title", "tags"])
def test_every_codec_refuses_nul_naming_the_field(fmt: str, field: str) -> None:
    codec = CODECS[fmt]
    values: dict[str, Any] = {"title": "ok", "tags": ["a"]}
    values[field] = "a\x00b" if field == "title" else ["a", "b\x00"]
    payload = codec.encode(Note.model_construct(**values))  # a sender that did not check
    with pytest.raises(DecodeError) as refused:
        codec.decode(payload, Note)
    assert refused.value.field == (field if field == "title" else "tags.1")
    assert "NUL (U+0000)" in refused.value.reason


LONE = "\udb66".encode("utf-8", "surrogatepass")  # what a careless encoder writes


def _with_lone_surrogate(fmt: str) -> bytes:
    if fmt == "json":
        return b'{"title": "\\udb66"}'
    marker = "SURROGATE"
    payload = CODECS[fmt].encode(Note(title=marker))
    if fmt == "xml":
        return payload.replace(marker.encode(), b"&#xDB66;")
    # protobuf and avro prefix a string with its length: keep it the same.
    return payload.replace(marker.encode(), LONE * 3)


@pytest.mark.parametrize("fmt", sorted(CODECS))
def test_every_codec_refuses_a_lone_surrogate(fmt: str) -> None:
    with pytest.raises(DecodeError):
        CODECS[fmt].decode(_with_lone_surrogate(fmt), Note)


class Plain(BaseModel):  # a nested model of another base
    street: str


class Order(TextSafeModel):
    address: Plain
    labels: dict[str, str] = {}
    extra: Any = None
    note: SafeText | None = None


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"address": {"street": "a\x00"}}, "address.street"),
        ({"address": {"street": "a"}, "labels": {"k\x00": "v"}}, "labels.k\x00.[key]"),
        ({"address": {"street": "a"}, "extra": {"deep": ["x", "\udb66"]}}, "extra.deep.1"),
        ({"address": {"street": "a"}, "note": "\x00"}, "note"),
    ],
)
def test_a_text_safe_model_finds_unsafe_text_at_any_depth(data: dict[str, Any], where: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Order.model_validate(data)
    [error] = refused.value.errors()
    assert error["type"] == "unsafe_text"
    assert ".".join(str(p) for p in error["loc"]) == where


class Line(TextSafeModel):
    name: str


class Basket(TextSafeModel):
    lines: list[Line]
    gift: Line | None = None


class Chain(TextSafeModel):  # refers to itself: its reference cannot be resolved early
    label: str
    next: Chain | None = None


@pytest.mark.parametrize(
    ("model", "data", "where"),
    [
        (Basket, {"lines": [{"name": "ok"}, {"name": "b\x00"}]}, "lines.1.name"),
        (Basket, {"lines": [], "gift": {"name": "\x00"}}, "gift.name"),
        (
            Chain,
            {"label": "a", "next": {"label": "b", "next": {"label": "\x00"}}},
            "next.next.label",
        ),
    ],
)
def test_nested_text_safe_models_check_their_own_text(
    model: type[TextSafeModel], data: dict[str, Any], where: str
) -> None:
    # Nested models of ours carry no extra after-check (they check themselves): the
    # error still comes once, at the nested field.
    with pytest.raises(ValidationError) as refused:
        model.model_validate_json(json.dumps(data))
    [error] = refused.value.errors()
    assert error["type"] == "unsafe_text"
    assert ".".join(str(p) for p in error["loc"]) == where


def test_find_unsafe_text_names_the_place() -> None:
    assert find_unsafe_text({"a": ["ok", "fine"]}) is None
    where, problem = find_unsafe_text({"a": ["ok", "x\udb66"]}) or ("", "")
    assert where == "a.1" and "U+DB66" in problem and "character 1" in problem


class Body(TextSafeModel):
    name: str


async def test_rest_refuses_unsafe_text_in_a_header_and_a_body() -> None:
    app = create_app("t", "1.0.0")
    v1 = versioned_router(1)

    @v1.post("/things", name="make")
    async def make(body: Body) -> dict[str, str]:
        return {"name": body.name}

    app.include_router(v1)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        header = await client.post("/v1/things", json={"name": "a"}, headers={"x-tag": "a\x00"})
        body = await client.post(
            "/v1/things",
            content=b'{"name": "\\udb66", "other": {"\\udb66": 1}}',
            headers={"content-type": "application/json"},
        )
        fine = await client.post("/v1/things", json={"name": "a"})
    assert header.status_code == 422, header.text
    assert header.json()["errors"][0]["field"] == "header.x-tag"
    assert body.status_code == 422, body.text
    assert body.json()["errors"] == [
        {
            "field": "body.name",
            "message": "text must not contain an unpaired UTF-16 surrogate (U+DB66); "
            "found at character 0",
            "code": "unsafe_text",
        }
    ]
    assert fine.status_code == 200


def test_the_command_line_refuses_a_lone_surrogate(capsys: pytest.CaptureFixture[str]) -> None:
    # Bytes of a command line that are not UTF-8 reach Python as lone surrogates.
    with pytest.raises(SystemExit) as exited:
        servicewire_main(["trace", "--db", "sqlite://", "--no-svg", "order-\udcff"])
    assert exited.value.code == 2
    assert "argument id: text must not contain an unpaired UTF-16 surrogate" in (
        capsys.readouterr().err
    )
