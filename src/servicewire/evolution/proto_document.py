"""A ``.proto`` file compiled by the protobuf toolchain into a descriptor set.

Files are compiled in-process by ``grpc_tools.protoc`` into a ``FileDescriptorSet``
(never parsed with regular expressions); :mod:`~.proto` compares two of them::

    doc = load_proto(Path("protos/ftgo/order/v1/order.proto"), include=[Path("protos")])
    doc.file().package                  # "ftgo.order.v1"
    doc.digest                          # SHA-256 of the text, api-version line excluded

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
            f"--descriptor_set_out={out}",
            str(owner / relative),
        ]
        code, errors = _protoc(args)
        if code != 0:
            # Drop abseil's logging preamble and warnings; keep protoc's own errors.
            skip = ("WARNING: All log", "W0000", "I0000")
            kept = [ln for ln in errors.strip().splitlines() if not ln.startswith(skip)]
            raise DocumentError(str(path), "\n".join(kept) or f"protoc exited {code}")
        data = out.read_bytes()
    digest = text_digest(path.read_text(encoding="utf-8", errors="replace"))
    return ProtoDocument(data, digest, str(path))


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
