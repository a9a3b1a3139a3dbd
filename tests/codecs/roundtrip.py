"""Round-trip helpers other test suites reuse (for example the FTGO contract tests).

from tests.codecs.roundtrip import assert_roundtrips_all_codecs
assert_roundtrips_all_codecs(CreateOrder(order_id="o-1", ...))
"""

from __future__ import annotations

from servicewire.codecs import Codec, default_codecs
from servicewire.codecs.serialization import from_message, to_message
from servicewire.messaging.contracts import Contract, ContractRegistry

CODECS: list[Codec] = list(default_codecs())
FORMATS = sorted(c.format_name for c in CODECS)


def assert_roundtrips(value: Contract, codec: Codec) -> None:
    """``value`` encodes and decodes back to an equal value through ``codec``."""
    cls = type(value)
    payload = codec.encode(value)
    assert isinstance(payload, bytes), codec.format_name
    back = codec.decode(payload, cls)
    assert back == value, f"{codec.format_name}: {back!r} != {value!r}"


def assert_roundtrips_all_codecs(value: Contract, *, via_message: bool = True) -> None:
    """``value`` round-trips through JSON, XML, Protobuf and Avro.

    With ``via_message`` it also travels inside a :class:`~servicewire.Message` (content
    type header selects the codec on the way back, as a consumer does).
    """
    assert FORMATS == ["avro", "json", "protobuf", "xml"], FORMATS
    for codec in CODECS:
        assert_roundtrips(value, codec)
        if via_message and type(value).default_channel() is not None:
            message = to_message(value, codec=codec)
            assert message.content_type == codec.content_type
            # A registry of just this class: the value may be an unregistered old version.
            registry = ContractRegistry().subset([type(value)])
            assert from_message(message, registry=registry) == value, codec.format_name
