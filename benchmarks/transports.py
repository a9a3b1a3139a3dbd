"""Transports next to their raw client libraries: confirmed publish and acked consume.

For every case module in ``benchmarks/transport_cases/`` (amqp, kafka, kinesis, nats, redis,
stomp, sqs, zmq: whichever exist; stomp starts a private ActiveMQ, sqs and kinesis a private moto
server), ``n`` messages of
``size`` bytes are published pipelined with broker confirmation and then consumed with
an ack each, first by the raw client library, then by Servicewire's transport, in the
same run; plus FastStream on RabbitMQ. Where a case has ``raw_enveloped`` (amqp,
kafka), the raw client runs again carrying the very headers ours sends (the
CloudEvents envelope, built before the clock starts): ours/raw says what using
Servicewire costs against a bare client sending only a payload and an id;
ours/(raw + envelope) says what the transport itself adds. Where a case has
``raw_same_topology`` (amqp), the raw client runs once more on the broker objects ours
declares (16 single-active-consumer queues, one message in flight each, the envelope):
ours/(raw, same topology) is our client code alone, and (same topology)/raw is what
the broker charges for the per-key-order topology. Prints msg/s and the ratios (and
ours/FastStream)::

    .venv/bin/python benchmarks/transports.py                       # every transport
    .venv/bin/python benchmarks/transports.py --only amqp,nats --n 5000 --size 500

A transport whose server does not answer is skipped with a note, not failed.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import pkgutil
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import transport_cases  # found through the path set just above

Case = Callable[[str, int, int], Awaitable[tuple[float, float]]]

_DEFAULT_PORTS = {"amqp": 5672, "kafka": 9092, "nats": 4222, "redis": 6379}


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme.startswith("zmq") or not parts.hostname:
        return True  # brokerless: nothing to reach beforehand
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme.split("+")[0], 0)
    try:
        with socket.create_connection((parts.hostname, port), timeout=1.0):
            return True
    except OSError:
        return False


def _cases(only: set[str] | None) -> list[tuple[str, ModuleType]]:
    found = []
    for info in pkgutil.iter_modules(transport_cases.__path__):
        if info.name.startswith("_") or (only and info.name not in only):
            continue
        try:
            module = importlib.import_module(f"transport_cases.{info.name}")
        except ImportError as exc:
            print(f"  {info.name}: skipped, cannot import its case ({exc})")
            continue
        found.append((info.name, module))
    return found


async def _measure(label: str, case: Case, url: str, n: int, size: int) -> tuple[float, float]:
    start = time.perf_counter()
    publish, consume = await case(url, n, size)
    took = time.perf_counter() - start
    print(
        f"  {label:<22} publish {publish:>9,.0f} msg/s   consume {consume:>9,.0f} msg/s"
        f"   ({took:.1f}s)",
        flush=True,
    )
    return publish, consume


def _best(runs: list[tuple[float, float]]) -> tuple[float, float]:
    """The best publish and best consume rate: the runs least disturbed by other load."""
    return max(r[0] for r in runs), max(r[1] for r in runs)


def _ratio(ours: tuple[float, float], other: tuple[float, float], label: str) -> None:
    print(
        f"  {label:<26} publish {ours[0] / other[0]:>8.2f}x"
        f"        consume {ours[1] / other[1]:>8.2f}x"
    )


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="messages per run (20000)")
    parser.add_argument("--size", type=int, default=500, help="payload bytes (500)")
    parser.add_argument("--only", default="", help="comma-separated case names, e.g. amqp,nats")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds; best kept (2)")
    args = parser.parse_args()
    only = {name.strip() for name in args.only.split(",") if name.strip()} or None
    print(
        f"Transports: {args.n:,} messages of {args.size} bytes; publish pipelined with "
        "broker confirmation, consume with an ack each."
    )
    results: dict[str, dict[str, tuple[float, float]]] = {}
    for name, module in _cases(only):
        url: str = module.URL
        print(f"\n[{name}] {url.split('@')[-1]}")
        if not _reachable(url):
            print(f"  skipped: no server answers at {url.split('@')[-1]}")
            continue
        contenders: list[tuple[str, Case]] = [
            ("raw client", module.raw),
            ("servicewire", module.ours),
        ]
        enveloped = getattr(module, "raw_enveloped", None)
        if enveloped is not None:
            contenders.append(("raw + envelope", enveloped))
        same_topology = getattr(module, "raw_same_topology", None)
        if same_topology is not None:
            contenders.append(("raw, same topology", same_topology))
        extra = getattr(module, "faststream", None)
        if extra is not None:
            contenders.append(("faststream", extra))
        runs: dict[str, list[tuple[float, float]]] = {label: [] for label, _ in contenders}
        try:
            for round_no in range(1, args.rounds + 1):
                print(f"  round {round_no}/{args.rounds} ...", flush=True)
                for label, case in contenders:  # interleaved, so load drift hits all alike
                    runs[label].append(await _measure(label, case, url, args.n, args.size))
        except Exception as exc:  # one broken case must not hide the others' figures
            print(f"\n  {name} failed: {type(exc).__name__}: {exc}")
            continue
        row = {
            "raw": _best(runs["raw client"]),
            "ours": _best(runs["servicewire"]),
        }
        if "raw + envelope" in runs:
            row["enveloped"] = _best(runs["raw + envelope"])
        if "raw, same topology" in runs:
            row["topology"] = _best(runs["raw, same topology"])
        if "faststream" in runs:
            row["faststream"] = _best(runs["faststream"])
        print(f"  best of {args.rounds}:")
        for key, label in (
            ("raw", "raw client"),
            ("ours", "servicewire"),
            ("enveloped", "raw + envelope"),
            ("topology", "raw, same topology"),
            ("faststream", "faststream"),
        ):
            if key in row:
                print(
                    f"  {label:<22} publish {row[key][0]:>9,.0f} msg/s   "
                    f"consume {row[key][1]:>9,.0f} msg/s"
                )
        _ratio(row["ours"], row["raw"], "ours / raw")
        if "enveloped" in row:
            # The same headers on both sides: what our transport itself costs.
            _ratio(row["ours"], row["enveloped"], "ours / raw + envelope")
        if "topology" in row:
            # Same headers, same queues, same one-in-flight per queue: our client code.
            _ratio(row["ours"], row["topology"], "ours / raw, same topology")
            _ratio(row["topology"], row["raw"], "same topology / raw")
        if "faststream" in row:
            _ratio(row["ours"], row["faststream"], "ours / faststream")
            _ratio(row["faststream"], row["raw"], "faststream / raw")
        results[name] = row
    if not results:
        print("\nno transport measured")
        return 1
    print(
        "\nSummary (ours / raw client, best rounds; in brackets: / raw + envelope, "
        "and / raw on the same topology where measured):"
    )
    for name, row in results.items():
        line = (
            f"  {name:<8} publish {row['ours'][0] / row['raw'][0]:>5.2f}x   "
            f"consume {row['ours'][1] / row['raw'][1]:>5.2f}x"
        )
        if "enveloped" in row:
            line += (
                f"   (publish {row['ours'][0] / row['enveloped'][0]:.2f}x, "
                f"consume {row['ours'][1] / row['enveloped'][1]:.2f}x)"
            )
        if "topology" in row:
            line += (
                f"   (same topology: publish {row['ours'][0] / row['topology'][0]:.2f}x, "
                f"consume {row['ours'][1] / row['topology'][1]:.2f}x)"
            )
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
