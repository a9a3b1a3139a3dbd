"""gRPC messages under fuzz: FTGO's order and restaurant services and the echo service.

Raw bytes, mutated valid requests and well-formed requests with arbitrary field values
go to every unary and server-streaming method over a real loopback server. Properties:
every call ends with a status within its deadline (no hang, no UNKNOWN); bytes that do
not parse get INVALID_ARGUMENT; a request that parses as its message type never makes
a handler crash (no INTERNAL: a string with NUL, which PostgreSQL refuses, is
INVALID_ARGUMENT); and afterwards the server still reports SERVING and answers a
valid call. FTGO runs on each store of ``SERVICEWIRE_FUZZ_STORES``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import given
from hypothesis import strategies as st

from ftgo.generated.order.v1 import order_pb2, order_pb2_grpc
from ftgo.generated.restaurant.v1 import restaurant_pb2, restaurant_pb2_grpc
from ftgo.order.grpc import SERVICE as ORDER_SERVICE
from ftgo.order.grpc import OrderServicer
from ftgo.restaurant.grpc import SERVICE as RESTAURANT_SERVICE
from ftgo.restaurant.grpc import RestaurantServicer
from servicewire.grpc import Server
from servicewire.grpc.generated.testing.v1 import echo_pb2
from servicewire.grpc.testing import add_echo_service
from servicewire.timeouts import within
from tests import services
from tests.fuzz.settings import FUZZ, STORES
from tests.fuzz.stores import ftgo_on

text = st.one_of(st.text(max_size=40), st.text(max_size=5).map(lambda t: f"a\x00{t}"))
ids = st.one_of(text, st.uuids().map(str))

# method path -> (request type, streaming?, strategy of well-formed requests)
METHODS: dict[str, tuple[Any, bool, st.SearchStrategy[Any]]] = {
    "/ftgo.order.v1.OrderService/CreateOrder": (
        order_pb2.CreateOrderRequest,
        False,
        st.builds(
            order_pb2.CreateOrderRequest,
            consumer_id=ids,
            restaurant_id=ids,
            line_items=st.lists(
                st.builds(
                    order_pb2.LineItem,
                    menu_item_id=text,
                    quantity=st.integers(-(2**31), 2**31 - 1),
                ),
                max_size=5,
            ),
        ),
    ),
    "/ftgo.order.v1.OrderService/GetOrder": (
        order_pb2.GetOrderRequest,
        False,
        st.builds(order_pb2.GetOrderRequest, order_id=ids),
    ),
    "/ftgo.order.v1.OrderService/WatchOrder": (
        order_pb2.WatchOrderRequest,
        True,
        st.builds(order_pb2.WatchOrderRequest, order_id=ids),
    ),
    "/ftgo.restaurant.v1.RestaurantService/ValidateOrderDetails": (
        restaurant_pb2.ValidateOrderDetailsRequest,
        False,
        st.just(restaurant_pb2.ValidateOrderDetailsRequest()),
    ),
    "/servicewire.testing.v1.EchoService/Echo": (
        echo_pb2.EchoRequest,
        False,
        st.builds(
            echo_pb2.EchoRequest,
            message=text,
            delay_ms=st.integers(0, 50),
            fail_with=st.sampled_from(["", "not_found", "invalid", "conflict", "nonsense"]),
        ),
    ),
}


@st.composite
def calls(draw: st.DrawFn) -> tuple[str, bytes]:
    method = draw(st.sampled_from(sorted(METHODS)))
    _cls, _stream, valid = METHODS[method]
    kind = draw(st.sampled_from(["raw", "mutated", "valid"]))
    if kind == "raw":
        return method, draw(st.binary(max_size=300))
    data = bytearray(draw(valid).SerializeToString())
    if kind == "mutated":
        for _ in range(draw(st.integers(1, 4))):
            pos = draw(st.integers(0, len(data)))
            if draw(st.booleans()) and pos < len(data):
                data[pos] = draw(st.integers(0, 255))
            else:
                data[pos:pos] = draw(st.binary(min_size=1, max_size=6))
    return method, bytes(data)


def _parses(cls: Any, payload: bytes) -> bool:
    try:
        cls.FromString(payload)
    except Exception:  # protobuf raises DecodeError (and others) for bad bytes
        return False
    return True


def _asks_to_wait(method: str, payload: bytes) -> bool:
    """An Echo request whose ``delay_ms`` outlasts the unary call's 3 s deadline."""
    if not method.endswith("EchoService/Echo") or not _parses(echo_pb2.EchoRequest, payload):
        return False
    return echo_pb2.EchoRequest.FromString(payload).delay_ms >= 2_500


async def _call(channel: grpc.aio.Channel, method: str, payload: bytes) -> grpc.StatusCode:
    _cls, streaming, _valid = METHODS[method]
    identity: Callable[[bytes], bytes] = lambda b: b  # noqa: E731 - raw bytes both ways
    try:
        if streaming:
            call = channel.unary_stream(method, identity, identity)(payload, timeout=1.0)
            async for _item in call:
                pass
        else:
            await channel.unary_unary(method, identity, identity)(payload, timeout=3.0)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def _run(cases: list[tuple[str, bytes]], store: str, directory: Path) -> None:
    async with ftgo_on(store, directory) as system:
        server = Server(grace=0.5)
        server.add_service(
            order_pb2_grpc.add_OrderServiceServicer_to_server,
            OrderServicer(system.orders),
            ORDER_SERVICE,
        )
        server.add_service(
            restaurant_pb2_grpc.add_RestaurantServiceServicer_to_server,
            RestaurantServicer(system.restaurant_service),
            RESTAURANT_SERVICE,
        )
        add_echo_service(server)
        port = await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                for method, payload in cases:
                    code = await _call(channel, method, payload)
                    cls, streaming, _ = METHODS[method]
                    assert code is not grpc.StatusCode.UNKNOWN, (method, payload)
                    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
                        # A valid watch may wait; so may an echo that asks for a delay
                        # longer than the call's deadline (10,000 inputs found one).
                        assert streaming or _asks_to_wait(method, payload), (method, payload)
                    if _parses(cls, payload):
                        assert code is not grpc.StatusCode.INTERNAL, (method, payload)
                    else:  # refused as the client's error, with no parser internals
                        assert code is grpc.StatusCode.INVALID_ARGUMENT, (method, payload)
                health = health_pb2_grpc.HealthStub(channel)
                status = await health.Check(health_pb2.HealthCheckRequest(), timeout=2)
                assert status.status == health_pb2.HealthCheckResponse.SERVING
                ok = echo_pb2.EchoRequest(message="still here").SerializeToString()
                assert await _call(channel, "/servicewire.testing.v1.EchoService/Echo", ok) == (
                    grpc.StatusCode.OK
                )
        finally:
            await server.stop(0)


@pytest.mark.parametrize("store", STORES)
def test_grpc_methods_survive_hostile_messages(store: str, tmp_path: Path) -> None:
    if store != "sqlite":
        services.require(store)
    cases: list[tuple[str, bytes]] = []

    @FUZZ
    @given(calls())
    def collect(case: tuple[str, bytes]) -> None:
        cases.append(case)

    collect()
    asyncio.run(within(_run(cases, store, tmp_path), timeout=max(120.0, len(cases) * 0.1)))
