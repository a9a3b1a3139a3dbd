"""A ``.proto`` file compiled by the protobuf toolchain into a descriptor set.

Files are compiled in-process by ``grpc_tools.protoc`` into a ``FileDescriptorSet``
(never parsed with regular expressions); :mod:`~.proto` compares two of them::

    doc = load_proto(Path("protos/ftgo/order/v1/order.proto"), include=[Path("protos")])
    doc.file().package                  # "ftgo.order.v1"
    doc.digest                          # SHA-256 of the text, api-version line excluded
    doc.json_names_declared             # {"Order.total_cents"}: fields with a json_name option

Requires ``grpcio-tools`` (the ``evolution`` extra).
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from google.protobuf import descriptor_pb2 as d

from servicewire.evolution.model import DocumentError


@dataclass(frozen=True, slots=True)
class ProtoDocument:
    """A compiled ``.proto``: its descriptor set (imports included, target last) and text digest."""

    descriptor_set: bytes
    digest: str
    source: str = "api.proto"
    json_names_declared: frozenset[str] | None = None
    """Fields (``Message.Nested.field``) whose ``json_name`` is written in the source.

    protoc fills ``json_name`` for every field, so only the source info tells an explicit
    ``[json_name = "x"]`` from the default; ``None`` when unknown (an older API lock).
    """

    def file(self) -> d.FileDescriptorProto:
        """The descriptor of the file itself (protoc writes it after its imports)."""
        fds = d.FileDescriptorSet.FromString(self.descriptor_set)
        if not fds.file:
            raise DocumentError(self.source, "empty descriptor set")
        return fds.file[-1]

    def all_files(self) -> list[d.FileDescriptorProto]:
        return list(d.FileDescriptorSet.FromString(self.descriptor_set).file)


def load_proto(path: Path, include: Sequence[Path] = ()) -> ProtoDocument:
    """Compile ``path`` with protoc; the file's directory and ``include`` are import roots."""
    if not path.is_file():
        raise DocumentError(str(path), "no such file")
    roots = [p.resolve() for p in include if p.is_dir()]
    # protoc names a file relative to the first root that contains it; prefer the
    # configured roots so imports like "ftgo/common/v1/money.proto" resolve.
    owner = next((r for r in roots if path.resolve().is_relative_to(r)), None)
    if owner is None:
        owner = path.resolve().parent
        roots.insert(0, owner)
    relative = path.resolve().relative_to(owner)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.pb"
        args = [
            *(f"-I{r}" for r in roots),
            "--include_imports",
            "--include_source_info",
            f"--descriptor_set_out={out}",
            str(owner / relative),
        ]
        code, errors = _protoc(args)
        if code != 0:
            # Drop abseil's logging preamble and warnings; keep protoc's own errors.
            skip = ("WARNING: All log", "W0000", "I0000")
            kept = [ln for ln in errors.strip().splitlines() if not ln.startswith(skip)]
            raise DocumentError(str(path), "\n".join(kept) or f"protoc exited {code}")
        fds = d.FileDescriptorSet.FromString(out.read_bytes())
    declared = _declared_json_names(fds.file[-1]) if fds.file else frozenset()
    # Source info (comments, spans) is not API: keep the stored descriptor set without it.
    for f in fds.file:
        f.ClearField("source_code_info")
    data = fds.SerializeToString(deterministic=True)
    digest = text_digest(path.read_text(encoding="utf-8", errors="replace"))
    return ProtoDocument(data, digest, str(path), declared)


_MESSAGE_TYPE, _NESTED_TYPE, _FIELD, _JSON_NAME = 4, 3, 2, 10  # descriptor.proto numbers


def _declared_json_names(file: d.FileDescriptorProto) -> frozenset[str]:
    """``Message.field`` for each field whose source spells out ``json_name``.

    A source location path names a descriptor element by field numbers and indexes:
    ``[4, i, 3, j, 2, k, 10]`` is ``message_type[i].nested_type[j].field[k].json_name``.
    """
    declared: set[str] = set()
    for location in file.source_code_info.location:
        path = list(location.path)
        if len(path) < 5 or path[0] != _MESSAGE_TYPE or path[-1] != _JSON_NAME:
            continue
        if path[-3] != _FIELD or any(tag != _NESTED_TYPE for tag in path[2:-3:2]):
            continue
        message = file.message_type[path[1]]
        names = [message.name]
        for index in path[3:-3:2]:
            message = message.nested_type[index]
            names.append(message.name)
        declared.add(".".join([*names, message.field[path[-2]].name]))
    return frozenset(declared)


_PROTOC_LOCK = threading.Lock()


def _protoc(args: list[str]) -> tuple[int, str]:
    """Run protoc in this process; return its exit code and what it wrote to stderr.

    The compiler is a C++ extension that writes errors to file descriptor 2, so the
    descriptor is pointed at a temp file for the call (in-process is ~20x faster than a
    subprocess per file). The lock keeps concurrent callers from mixing their errors.
    """
    try:
        from grpc_tools import protoc  # type: ignore[import-untyped]
    except ImportError:
        return 1, "grpcio-tools is not installed (pip install 'servicewire[evolution]')"
    well_known = resources.files("grpc_tools") / "_proto"
    argv = ["protoc", *args, f"-I{well_known}"]
    with _PROTOC_LOCK, tempfile.TemporaryFile() as err:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(err.fileno(), 2)
        try:
            code = int(protoc.main(argv))
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        err.seek(0)
        return code, err.read().decode("utf-8", "replace")


def text_digest(text: str) -> str:
    """SHA-256 of a ``.proto`` text without its ``// api-version:`` line (not content)."""
    kept = [
        line
        for line in text.splitlines()
        if not line.strip().removeprefix("//").strip().startswith("api-version:")
        or not line.strip().startswith("//")
    ]
    return hashlib.sha256("\n".join(kept).encode()).hexdigest()
