"""Bad input of any kind raises DecodeError, and nothing else, from every codec."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from servicewire.codecs import Codec, default_codecs
from servicewire.errors import DecodeError
from tests.codecs.contracts import Containers, Everything, OrderNoteV1_0
from tests.codecs.roundtrip import CODECS
from tests.codecs.strategies import FUZZ
from tests.codecs.test_roundtrip import EVERYTHING, EXAMPLES

CONTRACTS = [Everything, Containers, OrderNoteV1_0]


def decode_or_decode_error(codec: Codec, payload: bytes, cls: type) -> None:
    """Decoding either succeeds with a valid value or raises DecodeError naming the format."""
    try:
        value = codec.decode(payload, cls)
    except DecodeError as exc:
        assert exc.format == codec.format_name
        assert exc.contract == cls.contract_name()
        assert str(exc).startswith(f"cannot decode {cls.contract_name()} from {codec.format_name}")
    else:
        assert isinstance(value, cls)


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.format_name)
def test_arbitrary_bytes_raise_only_decode_error(codec: Codec) -> None:
    @FUZZ
    @given(st.binary(max_size=512), st.sampled_from(CONTRACTS))
    def check(payload: bytes, cls: type) -> None:
        decode_or_decode_error(codec, payload, cls)

    check()


# Valid values to mutate: hand-written ones that fill every field (generated values are
# covered by the round-trip properties; here the fuzzing budget goes to the mutations).
SEEDS = [v for v in EXAMPLES if type(v) in CONTRACTS]


@st.composite
def mutated(draw: st.DrawFn, codec: Codec) -> tuple[bytes, type]:
    """A valid payload, then bytes flipped, cut, inserted or deleted."""
    value = draw(st.sampled_from(SEEDS))
    data = bytearray(codec.encode(value))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "byte"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "byte" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "truncate":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and data:
            del data[pos : pos + draw(st.integers(1, 8))]
    return bytes(data), type(value)


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.format_name)
def test_mutated_payloads_raise_only_decode_error(codec: Codec) -> None:
    @FUZZ
    @given(mutated(codec))
    def check(case: tuple[bytes, type]) -> None:
        decode_or_decode_error(codec, case[0], case[1])

    check()


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.format_name)
def test_every_truncation_of_a_valid_payload(codec: Codec) -> None:
    payload = codec.encode(EVERYTHING)
    for end in range(len(payload)):
        decode_or_decode_error(codec, payload[:end], Everything)


@pytest.mark.parametrize("fmt", ["json", "xml", "protobuf", "avro"])
def test_oversized_payload_is_refused_before_parsing(fmt: str) -> None:
    codec = default_codecs(max_size=64).for_format(fmt)
    payload = default_codecs().for_format(fmt).encode(EVERYTHING)
    assert len(payload) > 64
    with pytest.raises(DecodeError, match="exceeds the limit of 64 bytes") as info:
        codec.decode(payload, Everything)
    assert info.value.format == fmt
    assert info.value.contract == "test.codecs.Everything"


def test_default_limit_is_one_mebibyte() -> None:
    for codec in CODECS:
        assert codec.max_size == 1024 * 1024
        with pytest.raises(DecodeError, match="exceeds the limit"):
            codec.decode(b"\x00" * (1024 * 1024 + 1), Everything)


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.format_name)
def test_non_bytes_payload_is_a_decode_error(codec: Codec) -> None:
    with pytest.raises(DecodeError, match="not bytes"):
        codec.decode("text", Everything)  # type: ignore[arg-type]


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.format_name)
def test_wrong_type_names_the_field(codec: Codec) -> None:
    """A well-formed payload whose value the contract refuses (``lucky`` must be 3 or 7)."""
    bad = Containers.model_construct(lucky=5)  # bypasses validation, as a buggy peer would
    payload = codec.encode(bad)
    with pytest.raises(DecodeError) as info:
        codec.decode(payload, Containers)
    assert info.value.field == "lucky"
    assert "lucky" in str(info.value)


@pytest.mark.parametrize("fmt", ["json", "xml", "avro"])
def test_unparseable_payload_reports_an_offset(fmt: str) -> None:
    codec = default_codecs().for_format(fmt)
    payload = codec.encode(EVERYTHING)
    with pytest.raises(DecodeError) as info:
        codec.decode(payload[: len(payload) // 2], Everything)
    assert info.value.offset is not None
    assert f"at offset {info.value.offset}" in str(info.value)
