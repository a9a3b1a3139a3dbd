"""Unary request/response at 64 concurrent calls: our REST and gRPC clients vs the floor.

    .venv/bin/python benchmarks/rpc.py              # 10 s per client
    .venv/bin/python benchmarks/rpc.py --seconds 3  # quicker

One run measures, one after the other, against servers in SEPARATE processes (the
machine has 2 cores: one serves, one calls):

* REST: FastAPI (the example app's ``POST /v1/echo``) on uvicorn, called by
  - a minimal asyncio HTTP/1.1 keep-alive client over raw sockets (the floor, kept
    here on purpose: no pool, no parsing beyond Content-Length, no resilience), and
  - our :class:`~servicewire.rest.RestClient` (aiohttp underneath, plus discovery,
    deadline, breaker, bulkhead, input checks and response limits);
* gRPC: the echo service (``EchoService/Echo``) on grpc.aio, called by
  - a raw grpc.aio stub on one channel, and
  - our :class:`~servicewire.grpc.GrpcClient` (the same protections).

It prints req/s, p50 and p99 latency of each, and the ratios ours/floor. With
``--libraries`` it also measures raw aiohttp (what RestClient runs on) and httpx, and
prints what our layers add on top of raw aiohttp.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONCURRENCY = 64
BODY = b'{"message":"hello from the benchmark"}'


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, timeout: float = 60.0) -> None:
    # Importing the example app takes ~3 s of CPU: on the shared 2-core machine under
    # load that was over 20 s of wall time, and the slice failed before measuring.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not start")


@dataclass
class Result:
    name: str
    requests: int = 0
    seconds: float = 0.0
    cpu: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_per_call_us(self) -> float:
        return self.cpu / self.requests * 1e6 if self.requests else float("nan")

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    def row(self) -> str:
        return (
            f"{self.name:<34} {self.rate:>7,.0f} req/s  p50 {self.percentile(0.5):6.2f} ms"
            f"  p99 {self.percentile(0.99):6.2f} ms  client CPU {self.cpu_per_call_us:4.0f} us/call"
        )


async def _segment(result: Result, call: Callable[[], Awaitable[None]], seconds: float) -> None:
    """CONCURRENCY loops of ``call``: 0.5 s warm-up, then ``seconds`` added to ``result``."""
    measuring = False
    stop = False
    count = 0

    async def worker() -> None:
        nonlocal count
        while not stop:
            started = time.perf_counter()
            await call()
            if measuring:
                result.latencies.append(time.perf_counter() - started)
                count += 1

    workers = [asyncio.create_task(worker()) for _ in range(CONCURRENCY)]
    await asyncio.sleep(0.5)
    measuring = True
    began, cpu = time.perf_counter(), time.process_time()
    await asyncio.sleep(seconds)
    measuring = False
    result.seconds += time.perf_counter() - began
    result.cpu += time.process_time() - cpu
    result.requests += count
    stop = True
    await asyncio.gather(*workers)
    print(f"  {result.name}: {count / seconds:,.0f} req/s this round", flush=True)


async def _compare(
    floor: tuple[str, Callable[[], Awaitable[None]]],
    ours: tuple[str, Callable[[], Awaitable[None]]],
    seconds: float,
    rounds: int,
) -> tuple[Result, Result]:
    """Alternate floor and ours in ``rounds`` segments, so load from elsewhere on the
    machine hits both alike; each gets ``seconds`` measured in total."""
    results = Result(floor[0]), Result(ours[0])
    for round_number in range(1, rounds + 1):
        print(f" round {round_number}/{rounds}", flush=True)
        for result, (_, call) in zip(results, (floor, ours), strict=True):
            await _segment(result, call, seconds / rounds)
    return results


# ------------------------------------------------------------------------------ REST


class MinimalHttpClient:
    """The floor: one keep-alive connection per worker, Content-Length bodies only."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.request = (
            b"POST /v1/echo HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(BODY), BODY)
        )
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []

    async def call(self) -> None:
        # Between rounds connections sit idle past uvicorn's 5 s keep-alive: drop those.
        while self.idle and time.monotonic() - self.idle[-1][2] > 4.0:
            self.idle.pop()[1].close()
        if self.idle:
            reader, writer, _ = self.idle.pop()
        else:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(self.request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await reader.readexactly(length)
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head[:40])
        self.idle.append((reader, writer, time.monotonic()))

    def close(self) -> None:
        for _, writer, _ in self.idle:
            writer.close()


async def bench_rest(port: int, seconds: float, rounds: int) -> tuple[Result, Result]:
    from servicewire.rest import RestClient

    minimal = MinimalHttpClient(port)
    payload = {"message": "hello from the benchmark"}
    async with RestClient({"bench": [f"127.0.0.1:{port}"]}) as client:

        async def ours_call() -> None:
            await client.post("bench", "/v1/echo", json=payload)

        result = await _compare(
            ("minimal asyncio HTTP/1.1 client", minimal.call),
            ("servicewire RestClient", ours_call),
            seconds,
            rounds,
        )
    minimal.close()
    return result


async def bench_libraries(port: int, seconds: float) -> list[Result]:
    """The HTTP client libraries we chose among, raw, on the same server (--libraries):
    aiohttp (RestClient's transport) and httpx."""
    import aiohttp
    import httpx

    url = f"http://127.0.0.1:{port}/v1/echo"
    headers = {"content-type": "application/json"}
    results = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as s:

        async def aiohttp_call() -> None:
            async with s.post(url, data=BODY, headers=headers) as response:
                await response.read()

        results.append(Result("aiohttp ClientSession (raw)"))
        await _segment(results[-1], aiohttp_call, seconds)
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(limits=limits) as client:

        async def httpx_call() -> None:
            (await client.post(url, content=BODY, headers=headers)).read()

        results.append(Result("httpx AsyncClient (raw)"))
        await _segment(results[-1], httpx_call, seconds)
    return results


# ------------------------------------------------------------------------------ gRPC


async def bench_grpc(port: int, seconds: float, rounds: int) -> tuple[Result, Result]:
    import grpc

    from servicewire.grpc import GrpcClient
    from servicewire.grpc.generated.testing.v1 import echo_pb2
    from servicewire.grpc.generated.testing.v1.echo_pb2_grpc import EchoServiceStub

    request = echo_pb2.EchoRequest(message="hello from the benchmark")
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
        GrpcClient({"bench": [f"127.0.0.1:{port}"]}) as client,
    ):
        stub = EchoServiceStub(channel)

        async def raw_call() -> None:
            await stub.Echo(request, timeout=5.0)

        async def ours_call() -> None:
            await client.unary("bench", EchoServiceStub, "Echo", request)

        return await _compare(
            ("raw grpc.aio stub", raw_call),
            ("servicewire GrpcClient", ours_call),
            seconds,
            rounds,
        )


async def serve_grpc(port: int) -> None:
    from servicewire.grpc import Server
    from servicewire.grpc.testing import add_echo_service

    server = Server(port=port, grace=0.5)
    add_echo_service(server)
    async with server:
        await server.wait_for_termination()


# ------------------------------------------------------------------------------ main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per client")
    parser.add_argument(
        "--rounds", type=int, default=5, help="alternate floor and ours this many times"
    )
    parser.add_argument(
        "--libraries", action="store_true", help="also measure raw aiohttp and httpx clients"
    )
    parser.add_argument("--serve-grpc", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_grpc:
        asyncio.run(serve_grpc(args.serve_grpc))
        return 0

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    rest_port, grpc_port = _free_port(), _free_port()
    rest_server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "servicewire.rest.example:app", "--port",
         str(rest_port), "--log-level", "warning", "--no-access-log"],
        env=env,
    )  # fmt: skip
    grpc_server = subprocess.Popen(
        [sys.executable, __file__, "--serve-grpc", str(grpc_port)], env=env
    )
    try:
        _wait_port(rest_port)
        _wait_port(grpc_port)
        print(f"unary echo, {CONCURRENCY} concurrent calls, {args.seconds:.0f} s each; "
              "servers in separate processes")  # fmt: skip
        floor, rest = asyncio.run(bench_rest(rest_port, args.seconds, args.rounds))
        raw, grpc_ours = asyncio.run(bench_grpc(grpc_port, args.seconds, args.rounds))
        libraries = asyncio.run(bench_libraries(rest_port, args.seconds)) if args.libraries else []
    finally:
        for process in (rest_server, grpc_server):
            process.terminate()
        for process in (rest_server, grpc_server):
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()

    print()
    for result in (floor, rest, *libraries, raw, grpc_ours):
        print(result.row())
    print()
    print(
        f"REST: servicewire / minimal client = {rest.rate / floor.rate:.2f}x req/s (goal >= 0.70x);"
        f" client CPU per call {rest.cpu_per_call_us / floor.cpu_per_call_us:.2f}x"
    )
    print(
        f"gRPC: servicewire / raw grpc.aio   = {grpc_ours.rate / raw.rate:.2f}x req/s"
        " (goal >= 0.90x);"
        f" client CPU per call {grpc_ours.cpu_per_call_us / raw.cpu_per_call_us:.2f}x"
    )
    if libraries:
        aiohttp_raw = libraries[0]
        print(
            f"REST: servicewire / raw aiohttp   = {rest.rate / aiohttp_raw.rate:.2f}x req/s;"
            f" client CPU per call {rest.cpu_per_call_us / aiohttp_raw.cpu_per_call_us:.2f}x"
            " (what discovery, resilience and the checks add)"
        )
    print(f"gap:  servicewire REST / servicewire gRPC = {rest.rate / grpc_ours.rate:.2f}x req/s; "
          f"p50 {statistics.median(rest.latencies) * 1000:.2f} ms vs "
          f"{statistics.median(grpc_ours.latencies) * 1000:.2f} ms")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
