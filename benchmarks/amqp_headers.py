"""What the CloudEvents header naming costs on RabbitMQ (the ``ce_headers`` URL option).

For each naming (``amqp``: ``cloudEvents:type``; ``rabbitmq``: ``ce-type``; ``both``)
it measures the per-message Python work of :func:`~servicewire.transports.amqp.headers.encode`
plus the marshalling of the content header frame (our one-pass ``WireProperties``, and
pamqp's generic ``Basic.Properties`` on the same values as the raw figure), that frame's
size, and the
publish/consume rates of our transport on the local RabbitMQ (``transport_cases.amqp.ours``:
confirmed publishes, then a consumer acking each; best of ``--rounds`` interleaved rounds)::

    .venv/bin/python benchmarks/amqp_headers.py --n 5000 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import timeit

from pamqp import frame, header
from pamqp.commands import Basic
from transport_cases.amqp import URL, ours

from servicewire.messaging.message import Message
from servicewire.transports.amqp.headers import Naming, encode

NAMINGS: tuple[Naming, ...] = ("amqp", "rabbitmq", "both")


def encoding_cost(naming: Naming, size: int, loops: int = 20_000) -> tuple[float, float, int]:
    """(µs per message ours, µs with pamqp's generic marshal, content header frame bytes)
    for one typical event; the two timings alternate, best of three each."""
    message = Message.create(
        b"x" * size,
        destination="orders",
        kind="event",
        type="ftgo.order.OrderCreated",
        version="1.0.0",
        partition_key="o-1",
    )

    def once() -> bytes:
        body, props = encode(message, naming)
        return frame.marshal(header.ContentHeader(0, len(body), props), 1)

    def with_pamqp() -> bytes:
        body, ours = encode(message, naming)
        props = Basic.Properties(
            content_type=ours.content_type,
            message_id=ours.message_id,
            delivery_mode=ours.delivery_mode,
            headers=ours.headers,
        )
        return frame.marshal(header.ContentHeader(0, len(body), props), 1)

    assert once() == with_pamqp()  # the same bytes on the wire
    timings: dict[str, list[float]] = {"ours": [], "pamqp": []}
    for _ in range(3):
        timings["ours"].append(timeit.timeit(once, number=loops))
        timings["pamqp"].append(timeit.timeit(with_pamqp, number=loops))
    ours_us, pamqp_us = (min(timings[k]) / loops * 1e6 for k in ("ours", "pamqp"))
    return ours_us, pamqp_us, len(once())


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5_000, help="messages per broker run (5000)")
    parser.add_argument("--size", type=int, default=500, help="payload bytes (500)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds; best kept")
    parser.add_argument("--url", default=URL)
    args = parser.parse_args()
    best: dict[str, tuple[float, float]] = {}
    for _ in range(args.rounds):
        for naming in NAMINGS:
            sep = "&" if "?" in args.url else "?"
            pub, con = await ours(f"{args.url}{sep}ce_headers={naming}", args.n, args.size)
            old = best.get(naming, (0.0, 0.0))
            best[naming] = (max(old[0], pub), max(old[1], con))
    print(f"load average {os.getloadavg()[0]:.2f}; n={args.n}, payload {args.size} B")
    print(
        f"{'naming':<10}{'encode us':>11}{'pamqp us':>10}{'ratio':>7}"
        f"{'header B':>10}{'publish/s':>11}{'consume/s':>11}"
    )
    for naming in NAMINGS:
        micros, pamqp_micros, size = encoding_cost(naming, args.size)
        pub, con = best[naming]
        print(
            f"{naming:<10}{micros:>11.1f}{pamqp_micros:>10.1f}{micros / pamqp_micros:>6.2f}x"
            f"{size:>10}{pub:>11.0f}{con:>11.0f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
