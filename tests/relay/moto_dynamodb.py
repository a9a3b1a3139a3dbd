"""A private moto server (DynamoDB and DynamoDB Streams) for the dynamodb-streams relay tests.

moto is an emulator: what it cannot show (several shards, resharding, trimming, real
throttling) is checked against AWS's documentation instead (docs/relays.md)::

    with moto_dynamodb() as base:          # "dynamodb://test:test@127.0.0.1:PORT"
        url = f"{base}/{table}?region=us-east-1"
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from servicewire.testing.tansu import free_port, moto_binary


@contextlib.contextmanager
def moto_dynamodb(log_dir: Path) -> Iterator[str]:
    """Start ``moto_server`` on a free loopback port; stop it on exit."""
    binary = moto_binary()
    assert binary is not None, "moto_server is not installed (the dev extra has moto[server])"
    port = free_port()
    with open(log_dir / "moto.log", "wb") as log:
        proc = subprocess.Popen(
            [binary, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, f"moto_server exited with {proc.returncode}"
            try:
                with socket.create_connection(("127.0.0.1", port), 0.2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "moto_server did not listen within 30s"
                time.sleep(0.05)
        yield f"dynamodb://test:test@127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
