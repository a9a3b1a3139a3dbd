"""Who consumes what, for brokerless ZeroMQ: a directory at the rendezvous address.

Brokerless means messages travel straight from the sending process to the consuming
one; the peers still need to find each other. The first node to bind the rendezvous
address hosts this directory (if that node goes away, the next node to notice binds
it and everyone registers again). It carries no messages, only the membership: which
member of which group of which channel lives at which inbox address::

    host = DirectoryHost(ctx, "tcp://127.0.0.1:5555", heartbeat=0.25)
    if host.bind():                     # False: another node hosts it already
        host.start()
    client = DirectoryClient(ctx, "tcp://127.0.0.1:5555", node_state, on_view, heartbeat=0.25)
    await client.start()                # registered; the first view is in on_view
    await client.sync()                 # after subscribe/close: every live node has
                                        # applied the new view when this returns

``sync`` is a barrier: the directory pushes the new view to every node and waits for
their acknowledgements (up to a second; a node that does not answer is presumed gone)
before it answers, so a publish that starts after ``subscribe`` returned, in any
process, already sees the new member.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import zmq
import zmq.asyncio

from servicewire.errors import ConnectionFailedError
from servicewire.timeouts import within

log = logging.getLogger("servicewire.transports.zmq.transport")

HELLO = b"HELLO"
SYNC = b"SYNC"
VIEW_ACK = b"VACK"
BYE = b"BYE"
VIEW = b"VIEW"
OK = b"OK"
PONG = b"PONG"

MISSED_HEARTBEATS = 6
"""A node (or the directory) not heard from for this many heartbeats is gone."""

NodeState = dict[str, Any]
"""``{"node": id, "endpoint": inbox address, "members": [[channel, group, member], ...]}``"""
View = dict[str, Any]
"""``{"epoch": id, "version": n, "members": {channel: {group: [[member, endpoint], ...]}}}``"""


@dataclass
class _Node:
    routing_id: bytes
    state: NodeState
    last_seen: float


@dataclass
class _Barrier:
    version: int
    pending: set[str]
    done: asyncio.Event = field(default_factory=asyncio.Event)


class DirectoryHost:
    """The directory, hosted by whichever node bound the rendezvous address."""

    def __init__(self, ctx: zmq.asyncio.Context, rendezvous: str, *, heartbeat: float) -> None:
        self._ctx = ctx
        self._rendezvous = rendezvous
        self._heartbeat = heartbeat
        self._socket: zmq.asyncio.Socket | None = None
        self._lock_file: Any = None
        self._nodes: dict[str, _Node] = {}
        self._epoch = uuid.uuid4().hex
        self._version = 0
        self._barriers: list[_Barrier] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def bind(self) -> bool:
        """Take the rendezvous address; False when another node holds it."""
        if self._rendezvous.startswith("ipc://"):
            # Binding an ipc path silently steals it from a live owner, so an exclusive
            # lock next to it says who owns it (released when the owner dies).
            path = self._rendezvous[len("ipc://") :] + ".lock"
            lock_file = open(path, "a+")  # held open while we host
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                lock_file.close()
                return False
            self._lock_file = lock_file
        sock = self._ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        try:
            sock.bind(self._rendezvous)
        except zmq.ZMQError as exc:
            sock.close()
            self._unlock()
            if exc.errno == zmq.EADDRINUSE:
                return False
            raise ConnectionFailedError("zmq", self._rendezvous, str(exc)) from None
        self._socket = sock
        return True

    def start(self) -> None:
        for coro in (self._serve(), self._expire()):
            task = asyncio.create_task(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None
        self._unlock()

    def _unlock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    # Serving ----------------------------------------------------------------------------

    def _view(self) -> View:
        members: dict[str, dict[str, list[list[str]]]] = {}
        for node in self._nodes.values():
            for channel, group, member in node.state.get("members", []):
                members.setdefault(channel, {}).setdefault(group, []).append(
                    [member, node.state["endpoint"]]
                )
        for groups in members.values():
            for entries in groups.values():
                entries.sort()
        return {"epoch": self._epoch, "version": self._version, "members": members}

    def _send(self, routing_id: bytes, *frames: bytes) -> None:
        assert self._socket is not None
        with contextlib.suppress(zmq.ZMQError):
            self._socket.send_multipart([routing_id, *frames], flags=zmq.NOBLOCK)

    def _update(self, routing_id: bytes, state: NodeState) -> bool:
        """Record a node's state; True when the membership changed."""
        node_id = state["node"]
        node = self._nodes.get(node_id)
        now = time.monotonic()
        if node is None:
            self._nodes[node_id] = _Node(routing_id, state, now)
            return bool(state.get("members"))
        node.routing_id, node.last_seen = routing_id, now
        if node.state != state:
            node.state = state
            return True
        return False

    def _broadcast(self, skip: str | None = None) -> _Barrier:
        self._version += 1
        body = json.dumps(self._view()).encode()
        barrier = _Barrier(self._version, set())
        for node_id, node in self._nodes.items():
            if node_id != skip:
                barrier.pending.add(node_id)
                self._send(node.routing_id, VIEW, body)
        if not barrier.pending:
            barrier.done.set()
        self._barriers.append(barrier)
        return barrier

    async def _serve(self) -> None:
        assert self._socket is not None
        while True:
            frames = await self._socket.recv_multipart()
            if len(frames) < 2:
                continue
            routing_id, kind, rest = frames[0], frames[1], frames[2:]
            try:
                if kind == HELLO:
                    if self._update(routing_id, json.loads(rest[0])):
                        self._broadcast()
                    # The answer tells the node the directory lives, and which view is
                    # current, so a node that missed a view asks for it.
                    self._send(routing_id, PONG, self._epoch.encode(), str(self._version).encode())
                elif kind == SYNC:
                    request_id, state = rest[0], json.loads(rest[1])
                    changed = self._update(routing_id, state)
                    barrier = self._broadcast(skip=state["node"]) if changed else None
                    self._spawn(self._answer(routing_id, request_id, barrier))
                elif kind == VIEW_ACK:
                    node_id, epoch, version = rest[0].decode(), rest[1].decode(), int(rest[2])
                    if epoch == self._epoch:
                        self._acknowledged(node_id, version)
                elif kind == BYE:
                    if self._nodes.pop(rest[0].decode(), None) is not None:
                        self._broadcast()
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                log.warning("directory: ignoring a malformed %r frame: %s", kind[:8], exc)

    def _acknowledged(self, node_id: str, version: int) -> None:
        for barrier in self._barriers:
            if barrier.version <= version:
                barrier.pending.discard(node_id)
                if not barrier.pending:
                    barrier.done.set()
        self._barriers = [b for b in self._barriers if not b.done.is_set()]

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, routing_id: bytes, request_id: bytes, barrier: _Barrier | None) -> None:
        if barrier is not None:
            with contextlib.suppress(TimeoutError):
                await within(barrier.done.wait(), timeout=1.0)
        self._send(routing_id, OK, request_id, json.dumps(self._view()).encode())

    async def _expire(self) -> None:
        limit = self._heartbeat * MISSED_HEARTBEATS
        while True:
            await asyncio.sleep(self._heartbeat)
            now = time.monotonic()
            gone = [n for n, node in self._nodes.items() if now - node.last_seen > limit]
            for node_id in gone:
                log.info("directory: node %s stopped answering; removing its members", node_id)
                del self._nodes[node_id]
            if gone:
                self._broadcast()


class DirectoryClient:
    """A node's link to the directory: registration, heartbeats, views, failover."""

    def __init__(
        self,
        ctx: zmq.asyncio.Context,
        rendezvous: str,
        state: Callable[[], NodeState],
        on_view: Callable[[View], None],
        *,
        heartbeat: float,
        take_over: Callable[[], None],
    ) -> None:
        self._ctx = ctx
        self._rendezvous = rendezvous
        self._state = state
        self._on_view = on_view
        self._heartbeat = heartbeat
        self._take_over = take_over
        self._socket: zmq.asyncio.Socket | None = None
        self._requests: dict[bytes, asyncio.Future[View]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._epoch = ""
        self._version = -1
        self._last_heard = time.monotonic()
        self._resync: asyncio.Task[None] | None = None

    async def start(self, timeout: float = 3.0) -> None:
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RECONNECT_IVL, 50)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 500)
        sock.connect(self._rendezvous)
        self._socket = sock
        self._tasks = [asyncio.create_task(self._receive()), asyncio.create_task(self._beat())]
        try:
            await self.sync(timeout)
        except TimeoutError:
            await self.close(goodbye=False)
            raise ConnectionFailedError(
                "zmq", self._rendezvous, f"no directory answered within {timeout:.0f}s"
            ) from None

    async def sync(self, timeout: float = 5.0) -> None:
        """Send our state and return once every live node has applied the new view."""
        assert self._socket is not None
        request_id = uuid.uuid4().bytes
        future: asyncio.Future[View] = asyncio.get_running_loop().create_future()
        self._requests[request_id] = future
        body = json.dumps(self._state()).encode()
        try:
            deadline = asyncio.get_running_loop().time() + timeout
            while True:
                # Resend until answered: the request may have gone to a directory that
                # just died; the next host answers it.
                await self._socket.send_multipart([SYNC, request_id, body])
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    raise TimeoutError
                with contextlib.suppress(TimeoutError):
                    view = await within(asyncio.shield(future), min(remaining, 1.0))
                    self._apply(view)
                    return
        finally:
            self._requests.pop(request_id, None)

    async def close(self, goodbye: bool = True) -> None:
        if self._socket is not None and goodbye:
            with contextlib.suppress(zmq.ZMQError):
                node_id = str(self._state()["node"]).encode()
                await self._socket.send_multipart([BYE, node_id], flags=zmq.NOBLOCK)
        if self._resync is not None:
            self._tasks.append(self._resync)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._socket is not None:
            self._socket.close(linger=100 if goodbye else 0)
            self._socket = None

    def _apply(self, view: View) -> None:
        epoch, version = view["epoch"], int(view["version"])
        if epoch == self._epoch and version <= self._version:
            return
        self._epoch, self._version = epoch, version
        self._on_view(view)

    async def _receive(self) -> None:
        assert self._socket is not None
        while True:
            frames = await self._socket.recv_multipart()
            self._last_heard = time.monotonic()
            try:
                if frames[0] == VIEW:
                    view = json.loads(frames[1])
                    self._apply(view)
                    node_id = str(self._state()["node"]).encode()
                    ack = [VIEW_ACK, node_id, view["epoch"].encode(), str(view["version"]).encode()]
                    await self._socket.send_multipart(ack)
                elif frames[0] == PONG:
                    epoch, version = frames[1].decode(), int(frames[2])
                    stale = epoch != self._epoch or version > self._version
                    if stale and (self._resync is None or self._resync.done()):
                        self._resync = asyncio.create_task(self._quiet_sync())
                elif frames[0] == OK:
                    future = self._requests.get(frames[1])
                    if future is not None and not future.done():
                        future.set_result(json.loads(frames[2]))
            except (ValueError, KeyError, IndexError) as exc:
                log.warning("zmq node: ignoring a malformed directory frame: %s", exc)

    async def _quiet_sync(self) -> None:
        with contextlib.suppress(TimeoutError, zmq.ZMQError):
            await self.sync()

    async def _beat(self) -> None:
        assert self._socket is not None
        while True:
            await asyncio.sleep(self._heartbeat)
            with contextlib.suppress(zmq.ZMQError):
                body = json.dumps(self._state()).encode()
                await self._socket.send_multipart([HELLO, body], flags=zmq.NOBLOCK)
            if time.monotonic() - self._last_heard > self._heartbeat * MISSED_HEARTBEATS:
                # The directory is gone (its node closed or died): try to host it here.
                # Whoever wins the bind, our heartbeats register us with it.
                self._take_over()
                self._last_heard = time.monotonic()
