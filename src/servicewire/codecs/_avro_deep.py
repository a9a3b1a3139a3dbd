"""Reading Avro data whose schema is recursive, where nesting depth is the payload's choice.

fastavro's compiled reader recurses on the C stack, so a small hostile payload of a
recursive schema (a list node whose ``next`` is another node, 100,000 times) would
crash the process. Data of such schemas is read with Apache Avro's pure-Python reader
instead, where deep nesting ends in a ``RecursionError`` the codec reports::

    record = read_nested(stream, writer_schema, reader_schema)   # dicts, as fastavro gives

Both schemas are the JSON-ready dicts (the writer's from the SchemaStore, the reader's
derived from the contract); each is parsed once.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import IO, Any

import avro.io
import avro.schema


def read_nested(stream: IO[bytes], writer: dict[str, Any], reader: dict[str, Any]) -> Any:
    """One record of ``writer``'s schema from ``stream``, resolved against ``reader``'s."""
    datum_reader = avro.io.DatumReader(_parsed(_text(writer)), _parsed(_text(reader)))
    return datum_reader.read(avro.io.BinaryDecoder(stream))


def _text(schema: dict[str, Any]) -> str:
    return json.dumps(schema, sort_keys=True)


@lru_cache(maxsize=256)
def _parsed(text: str) -> avro.schema.Schema:
    return avro.schema.parse(text)
