"""What enforcing a deadline costs per call: ``Deadline.run`` vs a raw ``asyncio.timeout``.

Each call awaits a coroutine that yields to the loop once, with 64 such calls in flight
(as many as ``benchmarks/rpc.py`` keeps), so the timer heap holds what a busy client's
does. Figures are CPU microseconds per call, best of ``--rounds`` interleaved rounds::

    .venv/bin/python benchmarks/deadline.py --n 100000 --rounds 3

``Deadline.run`` is ``asyncio.timeout`` plus the conversion to ``DeadlineExceededError``,
so the ratio should stay near 1.0x; the bare await is the floor both add to.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Awaitable, Callable

from servicewire.resilience import Deadline

CONCURRENCY = 64


async def _work() -> int:
    await asyncio.sleep(0)
    return 1


async def bare() -> int:
    return await _work()


async def raw_timeout() -> int:
    async with asyncio.timeout(5.0):
        return await _work()


async def ours() -> int:
    return await Deadline(5.0).run(_work(), "call")


async def per_call(call: Callable[[], Awaitable[int]], n: int) -> float:
    """CPU microseconds per call, ``n`` calls spread over CONCURRENCY tasks."""

    async def worker() -> None:
        for _ in range(n // CONCURRENCY):
            await call()

    started = time.process_time()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return (time.process_time() - started) / (n // CONCURRENCY * CONCURRENCY) * 1e6


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="calls per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; best kept")
    args = parser.parse_args()
    cases = {"bare await": bare, "asyncio.timeout": raw_timeout, "Deadline.run": ours}
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(args.rounds):
        for name, call in cases.items():
            best[name] = min(best[name], await per_call(call, args.n))
    print(f"load average {os.getloadavg()[0]:.2f}; {args.n} calls, {CONCURRENCY} in flight")
    for name, micros in best.items():
        print(f"{name:<18}{micros:>8.2f} us/call")
    floor = best["bare await"]
    ours_cost, raw_cost = best["Deadline.run"] - floor, best["asyncio.timeout"] - floor
    print(f"Deadline.run / asyncio.timeout = {best['Deadline.run'] / best['asyncio.timeout']:.2f}x "
          f"per call; deadline overhead {ours_cost:.2f} us vs {raw_cost:.2f} us")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
