"""The codec registry: codecs by content type, and the default set.

codecs = default_codecs()                   # JSON + every installed optional format
codecs.for_content_type("application/xml")  # XmlCodec
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator

from servicewire.codecs.base import DEFAULT_MAX_SIZE, Codec, normalize_content_type
from servicewire.codecs.json import JsonCodec
from servicewire.errors import UnsupportedContentTypeError

# Optional formats, loaded when their library is installed: (module, class name).
_OPTIONAL = [
    ("servicewire.codecs.xml", "XmlCodec"),
    ("servicewire.codecs.protobuf", "ProtobufCodec"),
    ("servicewire.codecs.avro", "AvroCodec"),
]


class CodecRegistry:
    """Codecs by content type."""

    def __init__(self, codecs: list[Codec] | None = None) -> None:
        self._codecs: dict[str, Codec] = {}
        for codec in codecs or []:
            self.add(codec)

    def add(self, codec: Codec) -> None:
        self._codecs[normalize_content_type(codec.content_type)] = codec

    def for_content_type(self, content_type: str) -> Codec:
        """The codec for ``content_type`` (parameters ignored); raises if none."""
        codec = self._codecs.get(normalize_content_type(content_type))
        if codec is None:
            raise UnsupportedContentTypeError(content_type)
        return codec

    def for_format(self, name: str) -> Codec:
        """The codec whose ``format_name`` is ``name`` (``json``, ``xml``, ...)."""
        for codec in self._codecs.values():
            if codec.format_name == name:
                return codec
        raise UnsupportedContentTypeError(name)

    def content_types(self) -> list[str]:
        return list(self._codecs)

    def __iter__(self) -> Iterator[Codec]:
        return iter(list(self._codecs.values()))


def default_codecs(*, max_size: int = DEFAULT_MAX_SIZE) -> CodecRegistry:
    """A registry with JSON and every optional format whose library is installed."""
    registry = CodecRegistry([JsonCodec(max_size=max_size)])
    for module_name, class_name in _OPTIONAL:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        registry.add(getattr(module, class_name)(max_size=max_size))
    return registry
