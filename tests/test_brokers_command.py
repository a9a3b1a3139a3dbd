"""``servicewire brokers`` measures memory:// and the local Redis and writes its report."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import redis

from tests.activemq import require_activemq
from tests.services import URLS, require
from tests.tansu import require_tansu


def test_brokers_command_measures_memory_and_redis(tmp_path: Path) -> None:
    require("redis")
    out, chart = tmp_path / "brokers.md", tmp_path / "brokers.png"
    command = [
        sys.executable, "-m", "servicewire.cli.main", "brokers", "memory://", URLS["redis"],
        "--messages", "100", "--out", str(out), "--chart", str(chart),
    ]  # fmt: skip
    client = redis.Redis.from_url(URLS["redis"])
    before = set(client.scan_iter(match="sw:{probe.*", count=1000))
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    # The probe deletes the streams it declared: a measurement leaves the broker as found.
    left = set(client.scan_iter(match="sw:{probe.*", count=1000)) - before
    client.close()
    assert not left, f"the probe left {len(left)} keys, e.g. {sorted(left)[:3]}"
    # progress on stderr, the measured table on stdout
    assert "[memory] ordering" in done.stderr and "[redis] latency" in done.stderr
    assert "kept on 6/6 keys" in done.stdout
    report = out.read_text()
    assert "servicewire brokers memory://" in report and "--messages 100" in report
    rows = [
        line
        for line in report.splitlines()
        if line.startswith("| memory") or line.startswith("| redis")
    ]
    assert len(rows) == 4  # measured table and declared-capabilities table, both transports
    redis_row = next(r for r in rows if r.startswith("| redis") and "keys" in r)
    # the shared Redis keeps nothing on disk: measured on a private server configured alike
    assert "appendonly no" in redis_row and "kept 0/" in redis_row
    assert "0 duplicates" in redis_row and "0 lost" in redis_row
    assert chart.read_bytes().startswith(b"\x89PNG")


def test_unreachable_broker_is_reported_not_fatal(tmp_path: Path) -> None:
    out = tmp_path / "brokers.md"
    command = [
        sys.executable, "-m", "servicewire.cli.main", "brokers", "memory://",
        "redis://:hunter2@127.0.0.1:1/0", "--messages", "50", "--out", str(out),
        "--chart", str(tmp_path / "c.png"),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "unreachable" in done.stdout and "hunter2" not in done.stdout + done.stderr
    assert "hunter2" not in out.read_text() and "Not reachable in this run" in out.read_text()


def test_brokers_command_measures_kafka_on_a_private_tansu(tmp_path: Path) -> None:
    """``kafka://`` starts a tansu for the run (and one on S3 storage to restart) and
    stops both: every factor is measured and no broker process is left running."""
    require_tansu(persistent=True)
    cells, report = _probe_private(tmp_path, "kafka://")
    assert re.fullmatch(r"kept (\d+)/\1 \(private tansu, .*\)", cells[3])  # restart
    assert "Load average (1 min)" in report


def test_brokers_command_measures_activemq_over_stomp_on_a_private_broker(tmp_path: Path) -> None:
    """``stomp://`` starts a private ActiveMQ for the run, restarts it for persistence
    and stops it: every factor is measured and no broker process is left running."""
    require_activemq()
    cells, _ = _probe_private(tmp_path, "stomp://")
    assert re.fullmatch(r"kept (\d+)/\1 \(private broker, restarted\)", cells[3])


def _probe_private(tmp_path: Path, url: str) -> tuple[list[str], str]:
    """Run ``servicewire brokers URL`` (a broker it starts itself); check what every such
    row shares; return the row's cells and the report."""
    out = tmp_path / "brokers.md"
    command = [
        sys.executable, "-m", "servicewire.cli.main", "brokers", url,
        "--messages", "100", "--out", str(out), "--chart", str(tmp_path / "c.png"),
    ]  # fmt: skip
    # Processes inherit the marker: any left running afterwards were started by this run.
    marker = f"SW_PROBE_RUN={uuid.uuid4().hex}"
    env = {**os.environ, "SW_PROBE_RUN": marker.partition("=")[2]}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    assert not _processes_with(marker), "the probe left a broker process running"
    report = out.read_text()
    name = url.split(":", 1)[0]
    row = next(line for line in report.splitlines() if line.startswith(f"| {name}"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1] == "kept on 6/6 keys"
    assert "0 lost" in cells[2]
    assert re.fullmatch(r"kept (\d+)/\1", cells[4])  # durability: no member connected
    assert cells[5].startswith("yes (")
    assert all(float(c.replace(",", "")) > 0 for c in cells[6:9])
    return cells, report


def test_brokers_command_measures_sqs_on_a_private_moto(tmp_path: Path) -> None:
    """``sqs://`` starts a moto server (an SQS emulator) for the run and stops it."""
    _measures_on_a_private_moto(tmp_path, "sqs")


def test_brokers_command_measures_kinesis_on_a_private_moto(tmp_path: Path) -> None:
    """``kinesis://`` starts a moto server (Kinesis and DynamoDB) for the run and stops it."""
    _measures_on_a_private_moto(tmp_path, "kinesis")


def _measures_on_a_private_moto(tmp_path: Path, scheme: str) -> None:
    """Run ``servicewire brokers <scheme>://`` and check its row and that no moto is left."""
    out = tmp_path / "brokers.md"
    command = [
        sys.executable, "-m", "servicewire.cli.main", "brokers", f"{scheme}://",
        "--messages", "60", "--out", str(out), "--chart", str(tmp_path / "c.png"),
    ]  # fmt: skip
    marker = f"SW_PROBE_RUN={uuid.uuid4().hex}"
    env = {**os.environ, "SW_PROBE_RUN": marker.partition("=")[2]}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    assert not _processes_with(marker), "the probe left a moto process running"
    row = next(line for line in out.read_text().splitlines() if line.startswith(f"| {scheme}"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1] == "kept on 6/6 keys"
    assert "0 lost" in cells[2]
    assert cells[3].startswith("not measured: the emulator (moto)")
    assert re.fullmatch(r"kept (\d+)/\1", cells[4])  # durability: no member connected
    assert cells[5].startswith("yes (")
    assert all(float(c.replace(",", "")) > 0 for c in cells[6:9])


def _processes_with(marker: str) -> list[int]:
    """Ids of live processes whose environment holds ``marker`` (Linux /proc)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        with contextlib.suppress(OSError):
            if marker.encode() in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
    return found
