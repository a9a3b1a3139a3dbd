"""A decoder for PostgreSQL's built-in ``pgoutput`` logical replication protocol (v1).

Only what a relay needs: transaction boundaries, relation descriptions and inserted
rows, with column values in their text form::

    decoder = PgOutputDecoder()
    for payload in stream:
        message = decoder.feed(payload)
        if isinstance(message, Insert) and message.relation.name == "servicewire_outbox":
            row = message.values               # {"id": "17", "payload": "\\\\x7b...", ...}

Other message kinds (update, delete, truncate, type, origin) decode to ``None``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

_INT16 = struct.Struct("!h")
_INT32 = struct.Struct("!i")
_UINT32 = struct.Struct("!I")
_INT64 = struct.Struct("!q")


class PgOutputError(Exception):
    """A replication message that does not follow the pgoutput protocol."""


@dataclass(frozen=True, slots=True)
class Relation:
    oid: int
    namespace: str
    name: str
    columns: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Begin:
    final_lsn: int
    xid: int


@dataclass(frozen=True, slots=True)
class Commit:
    commit_lsn: int
    end_lsn: int


@dataclass(frozen=True, slots=True)
class Insert:
    relation: Relation
    values: dict[str, str | None]


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise PgOutputError(f"message truncated at offset {self.pos} (wanted {n} bytes)")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]

    def int16(self) -> int:
        return int(_INT16.unpack(self.take(2))[0])

    def int32(self) -> int:
        return int(_INT32.unpack(self.take(4))[0])

    def uint32(self) -> int:
        return int(_UINT32.unpack(self.take(4))[0])

    def int64(self) -> int:
        return int(_INT64.unpack(self.take(8))[0])

    def cstring(self) -> str:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise PgOutputError(f"unterminated string at offset {self.pos}")
        text = self.data[self.pos : end].decode()
        self.pos = end + 1
        return text


class PgOutputDecoder:
    """Keeps the relation map between messages; feed it payloads in stream order."""

    def __init__(self) -> None:
        self.relations: dict[int, Relation] = {}

    def feed(self, payload: bytes) -> Begin | Commit | Relation | Insert | None:
        if not payload:
            raise PgOutputError("empty message")
        r = _Reader(payload)
        tag = chr(r.byte())
        if tag == "B":
            final_lsn = r.int64()
            r.int64()  # commit timestamp
            return Begin(final_lsn, r.uint32())
        if tag == "C":
            r.byte()  # flags
            commit_lsn = r.int64()
            return Commit(commit_lsn, r.int64())
        if tag == "R":
            oid = r.uint32()
            namespace = r.cstring()
            name = r.cstring()
            r.byte()  # replica identity
            columns = []
            for _ in range(r.int16()):
                r.byte()  # flags (part of the key)
                columns.append(r.cstring())
                r.uint32()  # type oid
                r.int32()  # type modifier
            relation = Relation(oid, namespace, name, tuple(columns))
            self.relations[oid] = relation
            return relation
        if tag == "I":
            oid = r.uint32()
            known = self.relations.get(oid)
            if known is None:
                raise PgOutputError(f"insert into relation {oid} before its description")
            if r.byte() != ord("N"):
                raise PgOutputError("insert without a new tuple")
            return Insert(known, self._tuple(r, known))
        return None

    @staticmethod
    def _tuple(r: _Reader, relation: Relation) -> dict[str, str | None]:
        count = r.int16()
        if count != len(relation.columns):
            raise PgOutputError(
                f"{relation.name}: tuple has {count} columns, relation has {len(relation.columns)}"
            )
        values: dict[str, str | None] = {}
        for name in relation.columns:
            kind = chr(r.byte())
            if kind == "n" or kind == "u":  # null; unchanged TOAST (never on insert)
                values[name] = None
            elif kind == "t":
                values[name] = r.take(r.int32()).decode()
            else:
                raise PgOutputError(f"{relation.name}.{name}: unsupported value kind {kind!r}")
        return values


def lsn_to_int(lsn: str) -> int:
    """``"0/16B3748"`` -> integer."""
    high, low = lsn.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def int_to_lsn(value: int) -> str:
    """Integer -> ``"0/16B3748"``."""
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"
