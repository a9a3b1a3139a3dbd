"""The middleware chain: the first middleware is outermost, and the Service applies it."""

from __future__ import annotations

from servicewire import Context, Service, ServiceOptions
from servicewire.pipeline.middleware import Middleware, Run, Step, chain
from servicewire.pipeline.outcome import Outcome
from servicewire.pipeline.retry import RetryPolicy
from servicewire.testing import ServiceHarness
from tests.pipeline.runs import a_run
from tests.service.contracts import CreateTicket


def tagging(tag: str, seen: list[str]) -> Middleware:
    """A middleware that notes when a run enters and leaves it."""

    def middleware(next_step: Step) -> Step:
        async def step(run: Run) -> Outcome:
            seen.append(f"{tag} in")
            try:
                return await next_step(run)
            finally:
                seen.append(f"{tag} out")

        return step

    return middleware


async def test_the_first_middleware_is_outermost() -> None:
    seen: list[str] = []

    async def unit(run: Run) -> Outcome:
        seen.append("unit")
        return Outcome.HANDLED

    step = chain([tagging("a", seen), tagging("b", seen)], unit)
    assert await step(a_run()) is Outcome.HANDLED
    assert seen == ["a in", "b in", "unit", "b out", "a out"]


async def test_a_service_wraps_every_handler_run_in_its_middleware() -> None:
    seen: list[str] = []
    service = Service(
        "kitchen",
        options=ServiceOptions(
            retry=RetryPolicy(immediate=1, delayed=1, backoff=0.01),
            middleware=[tagging("mw", seen)],
        ),
    )

    @service.handles(CreateTicket)
    async def create(cmd: CreateTicket, ctx: Context) -> None:
        seen.append("handler")
        if seen.count("handler") == 1:
            raise ConnectionError("first run fails")

    async with ServiceHarness(service) as harness:
        assert await harness.deliver(CreateTicket(order_id="o-1")) is Outcome.HANDLED
    # once per run: the failed run and its immediate re-run
    assert seen == ["mw in", "handler", "mw out", "mw in", "handler", "mw out"]
