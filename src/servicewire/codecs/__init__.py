"""Message formats. One module per format; a registry picks one by content type.

    codecs = default_codecs()                       # JSON, XML, and Protobuf/Avro if installed
    codec = codecs.for_content_type("application/json")
    payload = codec.encode(order)

=================  ==============================  =====================================
format             content type                    module
=================  ==============================  =====================================
JSON               ``application/json``            :mod:`servicewire.codecs.json`
XML                ``application/xml``             :mod:`servicewire.codecs.xml`
Protobuf           ``application/protobuf``        :mod:`servicewire.codecs.protobuf`
Avro (single obj)  ``application/avro``            :mod:`servicewire.codecs.avro`
=================  ==============================  =====================================
"""

from servicewire.codecs.base import DEFAULT_MAX_SIZE, Codec
from servicewire.codecs.json import JsonCodec
from servicewire.codecs.registry import CodecRegistry, default_codecs
from servicewire.codecs.serialization import from_message, to_message
from servicewire.codecs.xml import XmlCodec

__all__ = [
    "DEFAULT_MAX_SIZE",
    "Codec",
    "CodecRegistry",
    "JsonCodec",
    "XmlCodec",
    "default_codecs",
    "from_message",
    "to_message",
]
