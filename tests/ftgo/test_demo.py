"""`ftgo demo` (what `make demo` runs) completes, every order as expected, with its diagram."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftgo.app.demo import run_demo


async def test_the_demo_runs_and_draws_the_sequence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run_demo(tmp_path / "demo", port_base=0) == 0
    out = capsys.readouterr().out
    assert "REST and gRPC on localhost" in out
    assert "ValidateConsumerInfo" in out and "OrderValidated" in out
    assert "Every order reached the state its data dictates." in out
    svg = (tmp_path / "demo" / "order-sequence.svg").read_text()
    assert svg.startswith("<svg") and "ConsumerValidated" in svg
    assert (tmp_path / "demo" / "order-sequence.mmd").read_text().startswith("sequenceDiagram")
