"""Message sequences: who sent what to whom, in order, as text, Mermaid and SVG.

Built from journal entries (:mod:`servicewire.telemetry.journal`). Each message becomes one
arrow from its sender to each service that received it; a message nobody received
(yet) points at its channel::

    steps = sequence(journal.conversation(order_id))
    print(render_text(steps))
    Path("order.svg").write_text(render_svg(steps, title=f"order {order_id}"))
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

from servicewire.telemetry.journal import JournalEntry


@dataclass(frozen=True, slots=True)
class Step:
    """One arrow: ``sender`` sent message ``type`` that ``receiver`` got."""

    at: float
    sender: str
    receiver: str
    type: str
    kind: str
    message_id: str
    outcome: str | None


def sequence(entries: Iterable[JournalEntry]) -> list[Step]:
    """Pair sends with receives by message id, in the order messages were sent."""
    entries = sorted(entries, key=lambda e: e.at)
    sends: dict[str, JournalEntry] = {}
    receives: dict[str, list[JournalEntry]] = {}
    for entry in entries:
        if entry.action == "send":
            sends.setdefault(entry.message_id, entry)
        else:
            receives.setdefault(entry.message_id, []).append(entry)
    steps: list[Step] = []
    seen: set[str] = set()
    for entry in entries:
        mid = entry.message_id
        if mid in seen:
            continue
        seen.add(mid)
        sent = sends.get(mid)
        sender = sent.service if sent else (entry.source or "?")
        at = sent.at if sent else entry.at
        short = entry.type.rsplit(".", 1)[-1] or "(untyped)"
        got = receives.get(mid, [])
        if not got:
            steps.append(Step(at, sender, f"[{entry.channel}]", short, entry.kind, mid, None))
        for rec in got:
            steps.append(Step(at, sender, rec.service, short, entry.kind, mid, rec.outcome))
    return steps


def participants(steps: Iterable[Step]) -> list[str]:
    """Lanes in order of first appearance."""
    order: list[str] = []
    for step in steps:
        for name in (step.sender, step.receiver):
            if name not in order:
                order.append(name)
    return order


def render_text(steps: list[Step]) -> str:
    """One line per arrow: time, sender -> receiver, message type and kind."""
    lines = []
    for n, step in enumerate(steps, 1):
        stamp = datetime.fromtimestamp(step.at, UTC).strftime("%H:%M:%S.%f")[:-3]
        note = f" [{step.outcome}]" if step.outcome and step.outcome != "handled" else ""
        lines.append(
            f"{n:>3}. {stamp}  {step.sender} -> {step.receiver}: {step.type} ({step.kind}){note}"
        )
    return "\n".join(lines)


def render_mermaid(steps: list[Step]) -> str:
    """A Mermaid ``sequenceDiagram``."""

    def ident(name: str) -> str:
        return "".join(ch if ch.isalnum() else "_" for ch in name)

    lines = ["sequenceDiagram"]
    for name in participants(steps):
        lines.append(f"    participant {ident(name)} as {name}")
    for step in steps:
        arrow = "-)" if step.kind == "event" else "->>"
        lines.append(f"    {ident(step.sender)}{arrow}{ident(step.receiver)}: {step.type}")
    return "\n".join(lines)


_KIND_COLOUR = {"command": "#1f6feb", "reply": "#2da44e", "event": "#bf8700", "document": "#6e7781"}


def render_svg(steps: list[Step], *, title: str = "") -> str:
    """A self-contained SVG sequence diagram (lanes, arrows, labels; no external assets)."""
    lanes = participants(steps)
    lane_width, top, row = 210, 70, 34
    width = max(lane_width * len(lanes) + 40, 420)
    height = top + row * (len(steps) + 1) + 30
    x = {name: 20 + lane_width * i + lane_width // 2 for i, name in enumerate(lanes)}
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" '
        'font-size="12">',
        '<rect width="100%" height="100%" fill="white"/>',
        "<defs>"
        + "".join(
            f'<marker id="arrow-{kind}" markerWidth="10" markerHeight="8" refX="9" refY="4" '
            f'orient="auto"><path d="M0,0 L10,4 L0,8 z" fill="{colour}"/></marker>'
            for kind, colour in _KIND_COLOUR.items()
        )
        + "</defs>",
    ]
    if title:
        out.append(
            f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14" '
            f'font-weight="bold">{escape(title)}</text>'
        )
    for name in lanes:
        cx = x[name]
        out.append(
            f'<rect x="{cx - 95}" y="32" width="190" height="24" rx="4" fill="#f6f8fa" '
            f'stroke="#57606a"/><text x="{cx}" y="48" text-anchor="middle">{escape(name)}</text>'
        )
        out.append(
            f'<line x1="{cx}" y1="56" x2="{cx}" y2="{height - 20}" stroke="#8c959f" '
            'stroke-dasharray="4 4"/>'
        )
    for i, step in enumerate(steps):
        y = top + row * (i + 1)
        x1, x2 = x[step.sender], x[step.receiver]
        colour = _KIND_COLOUR.get(step.kind, "#6e7781")
        marker = f"url(#arrow-{step.kind if step.kind in _KIND_COLOUR else 'document'})"
        dash = ' stroke-dasharray="6 3"' if step.kind == "reply" else ""
        if x1 == x2:
            out.append(
                f'<path d="M{x1},{y - 8} h40 v16 h-40" fill="none" stroke="{colour}"{dash} '
                f'marker-end="{marker}"/>'
            )
        else:
            out.append(
                f'<line x1="{x1}" y1="{y}" x2="{x2}" y2="{y}" stroke="{colour}" stroke-width="1.5"'
                f'{dash} marker-end="{marker}"/>'
            )
        label = f"{i + 1}. {step.type}"
        if step.outcome and step.outcome != "handled":
            label += f" [{step.outcome}]"
        out.append(
            f'<text x="{(x1 + x2) / 2 + (25 if x1 == x2 else 0)}" y="{y - 5}" '
            f'text-anchor="middle" fill="{colour}">{escape(label)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)
