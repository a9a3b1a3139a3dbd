from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest

from servicewire.transports.memory.transport import MemoryBroker
from tests.activemq import PrivateActiveMQ, require_activemq
from tests.services import services_required


@pytest.fixture(autouse=True)
def _fresh_memory_brokers() -> None:
    """Each test starts with no in-memory brokers left by another."""
    MemoryBroker.reset()


@pytest.fixture(autouse=True)
def _root_logger_restored() -> Iterator[None]:
    """Tests that run a CLI command in-process (``servicewire relay``, the console, ``ftgo
    serve``) call ``configure_logging``, which binds a root handler to that test's
    captured stderr. Left in place, it would write later tests' records into a closed
    stream and apply its filter to them; each test ends with the root logger as it began."""
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler.get_name() == "servicewire" and handler not in before:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """Under SERVICEWIRE_REQUIRE_SERVICES=1 (CI) any skip is a failure: every service and
    optional library is installed there, so a skipped test would be a hidden gap."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and services_required() and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under SERVICEWIRE_REQUIRE_SERVICES=1: {report.longrepr}"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test class may name inherited cases to run under ``make soak`` only, in
    ``soak_only`` (a set of test names): the -m 'not soak' of ``make test`` then leaves
    them out. Used where a second configuration of a transport repeats the contract
    suite and only some of its cases reach code the first one does not."""
    for item in items:
        names = getattr(getattr(item, "cls", None), "soak_only", ())
        if getattr(item, "originalname", item.name) in names:
            item.add_marker(pytest.mark.soak)
    _unique_node_ids(items)


def _unique_node_ids(items: list[pytest.Item]) -> None:
    """Give each collected test its own node id.

    Under pytest 9, schemathesis 4's per-operation items (``@schema.parametrize()``) all
    carry the test function's node id (``test_api``, nine times), though their names
    differ (``test_api[GET /v1/orders]``). pytest-xdist addresses tests by node id, so
    ``make test -n 2`` ran the first operation only and skipped the other eight without
    a word. An item whose id is shared takes its parent's id and its own name.
    """
    seen: dict[str, int] = {}
    for item in items:
        seen[item.nodeid] = seen.get(item.nodeid, 0) + 1
    for item in items:
        if seen[item.nodeid] > 1 and item.parent is not None:
            # pytest 9 keeps the id as a structured NodeId built from a callspec, which
            # schemathesis's items lack; parsing "<parent>::<name>" restores the params.
            item._id = type(item._id).parse(f"{item.parent.nodeid}::{item.name}")
    ids = [item.nodeid for item in items]
    assert len(ids) == len(set(ids)), "two collected tests share a node id"


@pytest.fixture(scope="session")
def activemq() -> Iterator[PrivateActiveMQ]:
    """One private ActiveMQ (STOMP connector only) for the whole run: a JVM takes seconds
    to start. Its process belongs to no event loop, so every test's own loop can use it,
    restart it (the restart cases) and find it running again afterwards."""
    require_activemq()
    broker = PrivateActiveMQ(connectors=("stomp",))
    asyncio.run(broker.start())
    try:
        yield broker
    finally:
        asyncio.run(broker.close())
