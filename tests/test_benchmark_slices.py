"""A fast slice of every benchmark in ``benchmarks/``, so none of them rots unseen.

``make bench`` runs them at full size; here each runs as a user runs it (a script from
the repository root) with the smallest parameters that still go through every phase,
and must exit 0 and print its headline figure. The figures themselves mean nothing at
this size and are not checked. Benchmarks that write a plot are pointed away from docs/.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.services import require

ROOT = Path(__file__).resolve().parent.parent

# (script and arguments, services it needs, a line it prints when it got through)
SLICES: list[tuple[list[str], tuple[str, ...], str]] = [
    (["amqp_headers.py", "--n", "200", "--rounds", "1"], ("rabbitmq",), "rabbitmq"),
    (["amqp_publish_cpu.py", "--n", "300", "--rounds", "1"], ("rabbitmq",), "ours / raw"),
    (["codecs.py", "--rounds", "1"], (), "pydantic model_dump"),
    (["deadline.py", "--n", "2000", "--rounds", "1"], (), "Deadline.run / asyncio.timeout"),
    (["idle.py", "--seconds", "1", "--warmup", "1"], ("postgres",), "statements/s"),
    (["journal.py", "--messages", "200"], (), "direct / buffered"),
    (
        ["pipeline.py", "--only", "sqlite", "--n", "200", "--seconds", "1"],
        (),
        "framework overhead",
    ),
    (
        ["relay.py", "--cases", "polling-sqlite", "--rows", "300", "--seconds", "1", "--png="],
        ("rabbitmq",),
        "raw aio-pika (floor)",
    ),
    (["relay_cpu.py", "--rows", "200", "--db", "pg"], ("postgres",), "µs CPU/row"),
    (
        ["rpc.py", "--seconds", "0.5", "--rounds", "1", "--libraries"],
        (),
        "REST: servicewire / raw aiohttp",
    ),
    (
        ["sqlite_driver.py", "--n", "100", "--rounds", "1", "--slow-rows", "10000"],
        (),
        "servicewire / sqlite3",
    ),
    (["security.py", "--rounds", "1"], (), "service token verify"),
    (["tokens.py", "--calls", "5", "--windows", "2"], (), "EdDSA (Ed25519)"),
    (["unit_of_work.py", "--n", "50", "--rounds", "1"], ("postgres",), "ours / raw"),
    (["telemetry_overhead.py", "--rounds", "1", "--rows", "200"], ("postgres",), "tracing"),
    (
        ["transports.py", "--only", "memory,redis", "--n", "300", "--rounds", "1"],
        ("redis",),
        "ours / raw client",
    ),
    # stomp starts (and stops) a private ActiveMQ of its own: scripts/services/70-activemq.sh
    (["transports.py", "--only", "stomp", "--n", "100", "--rounds", "1"], (), "stomp    publish"),
    # SQS on a private moto server the case starts and stops (no shared service)
    (["transports.py", "--only", "sqs", "--n", "60", "--rounds", "1"], (), "ours / raw client"),
    # Kinesis (and its DynamoDB lease table) on a private moto server, likewise
    (["transports.py", "--only", "kinesis", "--n", "60", "--rounds", "1"], (), "ours / raw client"),
]


def test_every_benchmark_has_a_slice() -> None:
    # ftgo.py runs whole services; its distributed case has tests of its own
    # (tests/ftgo/test_serve_stack.py), and its embedded case is FTGO's demo path.
    scripts = {p.name for p in (ROOT / "benchmarks").glob("*.py")} - {"ftgo.py"}
    assert scripts == {args[0] for args, _needs, _expect in SLICES}


@pytest.mark.parametrize(
    ("args", "needs", "expect"),
    SLICES,
    ids=[
        s[0][0].removesuffix(".py")
        + ("-sqs" if "sqs" in s[0] else "-kinesis" if "kinesis" in s[0] else "")
        for s in SLICES
    ],
)
def test_benchmark_slice_runs(args: list[str], needs: tuple[str, ...], expect: str) -> None:
    for service in needs:
        require(service)
    script, *options = args
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *options],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert expect in output, output[-3000:]
