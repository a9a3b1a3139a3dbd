"""``servicewire brokers [URL ...]``: measure and compare the reachable transports.

    servicewire brokers                                   # every local broker it can reach
    servicewire brokers redis://127.0.0.1:6379/0 kafka://127.0.0.1:9092 --messages 500

Prints the literature's selection factors, measured (see :mod:`servicewire.cli.brokers_probe`),
as a table; writes it to ``docs/brokers.md`` with the date and the command, and a
chart of throughput and latency to ``docs/brokers.png``. Progress goes to stderr.
Exit 0 when at least one transport was measured, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from servicewire.cli.brokers_probe import ProbeResult

COLUMNS = [
    ("transport", "name"),
    ("ordering (per key, competing members)", "ordering"),
    ("delivery guarantee", "delivery"),
    ("persistence across a broker restart", "persistence"),
    ("durability (consumer disconnected)", "durability"),
    ("competing consumers", "competing"),
    ("publish msg/s", "publish_rate"),
    ("latency p50 ms", "latency_p50_ms"),
    ("latency p99 ms", "latency_p99_ms"),
]


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "brokers",
        help="measure ordering, guarantees, persistence, throughput and latency per broker",
        description="Probe each reachable transport and print the measured selection "
        "factors; write them to a Markdown table and a PNG chart.",
    )
    parser.add_argument(
        "urls",
        nargs="*",
        metavar="URL",
        help="transports to probe (default: memory, amqp, nats, redis and zmq on this host, "
        "kafka:// on a private tansu broker, stomp:// on a private ActiveMQ, "
        "sqs:// and kinesis:// on a private moto server)",
    )
    parser.add_argument(
        "--messages",
        type=int,
        default=2000,
        help="messages in the throughput probe; the other probes scale from it (default 2000)",
    )
    parser.add_argument("--out", type=Path, default=Path("docs/brokers.md"), help="Markdown table")
    parser.add_argument("--chart", type=Path, default=Path("docs/brokers.png"), help="PNG chart")
    parser.add_argument("--no-write", action="store_true", help="print only; write no files")


def run(args: argparse.Namespace) -> int:
    from servicewire.cli.brokers_probe import default_urls, probe_all

    if args.messages < 10:
        print("servicewire brokers: --messages must be at least 10", file=sys.stderr)
        return 2
    urls = list(args.urls) or default_urls()
    # The probes provoke what transports warn about in production (a Redis restarted
    # without persistence loses its groups); progress lines tell the story here.
    logging.getLogger("servicewire.transports").setLevel(logging.ERROR)

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    load_before = os.getloadavg()
    results = asyncio.run(probe_all(urls, messages=args.messages, progress=progress))
    load = f"{load_before[0]:.2f} when it started, {os.getloadavg()[0]:.2f} when it ended"
    print(render_text(results))
    if not args.no_write:
        from servicewire.urls import redact_text

        tail = (shlex.quote(redact_text(a)) for a in _argv_tail())
        command = "servicewire brokers " + " ".join(tail)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(render_markdown(results, command.strip(), args.chart, args.out, load))
        measured = [r for r in results if r.reachable]
        if measured:
            write_chart(measured, args.chart)
        progress(f"wrote {args.out}" + (f" and {args.chart}" if measured else ""))
    return 0 if any(r.reachable for r in results) else 1


def _argv_tail() -> list[str]:
    argv = sys.argv[1:]
    return argv[argv.index("brokers") + 1 :] if "brokers" in argv else []


def _cell(result: ProbeResult, attr: str) -> str:
    value = getattr(result, attr)
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.0f}" if attr == "publish_rate" else f"{value:.2f}"
    return str(value)


def render_text(results: list[ProbeResult]) -> str:
    lines = []
    for r in results:
        lines.append(f"{r.name}  {r.url}")
        if not r.reachable:
            lines.append(f"    unreachable: {r.error}")
            continue
        for title, attr in COLUMNS[1:]:
            lines.append(f"    {title:<40} {_cell(r, attr)}")
        for note in r.notes:
            lines.append(f"    note: {note}")
    return "\n".join(lines)


def render_markdown(
    results: list[ProbeResult], command: str, chart: Path, out: Path, load: str = ""
) -> str:
    """The report; ``load`` is the host's load average during the run (figures are
    only comparable between runs on an equally quiet host)."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    measured = [r for r in results if r.reachable]
    header = "| " + " | ".join(t for t, _ in COLUMNS) + " |"
    rule = "|" + "---|" * len(COLUMNS)
    rows = ["| " + " | ".join(_cell(r, a).replace("|", "/") for _, a in COLUMNS) + " |"
            for r in measured]  # fmt: skip
    parts = [
        "# Broker comparison, measured",
        "",
        f"Generated {now} by `{command}` on {os.cpu_count()} cores, every broker on this",
        "host (loopback). Each figure was measured in that run, not taken from a data",
        "sheet; rerun the command to refresh this page. How each column is measured: see",
        "`servicewire/cli/brokers_probe.py` (3 competing members over 6 keys for ordering; a group",
        "with no member connected for durability; a private broker restarted for",
        "persistence — shared brokers are never restarted; `kafka://` is a private tansu,",
        "`stomp://` a private ActiveMQ;",
        "`sqs://` and `kinesis://` a private moto server, an emulator: their figures are",
        "moto's, not AWS's;",
        "500-byte messages; latency after one warm-up message).",
        "",
        *([f"Load average (1 min) of the host: {load}.", ""] if load else []),
        header,
        rule,
        *rows,
        "",
    ]
    if any(not r.reachable for r in results):
        parts += ["Not reachable in this run:", ""]
        parts += [f"- {r.name} `{r.url}`: {r.error}" for r in results if not r.reachable]
        parts.append("")
    notes = [(r.name, n) for r in measured for n in r.notes]
    if notes:
        parts += ["Notes:", ""] + [f"- {name}: {note}" for name, note in notes] + [""]
    parts += [
        "Declared capabilities (what each transport promises; the table shows what it did):",
        "",
    ]
    flags = list(measured[0].declared) if measured else []
    parts.append("| transport | " + " | ".join(flags) + " |")
    parts.append("|" + "---|" * (len(flags) + 1))
    for r in measured:
        parts.append(
            f"| {r.name} | " + " | ".join("yes" if r.declared[f] else "no" for f in flags) + " |"
        )
    parts += ["", f"![throughput and latency]({os.path.relpath(chart, out.parent)})", ""]
    return "\n".join(parts)


def write_chart(results: list[ProbeResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display here; must precede pyplot
    import matplotlib.pyplot as plt

    names = [r.name for r in results]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    rates = [r.publish_rate or 0.0 for r in results]
    left.bar(names, rates, color="#4c72b0")
    left.set_title("publish throughput (confirmed, pipelined)")
    # Rates span three orders of magnitude (an emulator beside the in-process memory
    # transport): on a linear axis the slow ones would not show at all.
    left.set_yscale("log")
    left.set_ylabel("messages / s (log scale)")
    for i, rate in enumerate(rates):
        left.annotate(f"{rate:,.0f}", (i, rate), ha="center", va="bottom", fontsize=8)
    xs = range(len(results))
    p50 = [r.latency_p50_ms or 0.0 for r in results]
    p99 = [r.latency_p99_ms or 0.0 for r in results]
    right.bar([x - 0.2 for x in xs], p50, width=0.4, label="p50", color="#55a868")
    right.bar([x + 0.2 for x in xs], p99, width=0.4, label="p99", color="#c44e52")
    right.set_xticks(list(xs), names)
    right.set_title("end-to-end latency, one message at a time")
    right.set_ylabel("milliseconds")
    right.legend()
    for axis in (left, right):  # nine names side by side would run into each other
        axis.tick_params(axis="x", labelrotation=30)
    fig.suptitle("servicewire brokers: measured on this host")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
