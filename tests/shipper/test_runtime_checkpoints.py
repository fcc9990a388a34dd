"""A checkpoint save that fails with a bug (not an OSError) is logged, and checkpointing goes on."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from shipper.config import parse_config
from shipper.topology import Topology


@pytest.mark.anyio
async def test_a_failing_checkpoint_save_does_not_end_checkpointing(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    config = parse_config(f"""
data_dir: {tmp_path / "data"}
api: {{enabled: false}}
checkpoint_interval_secs: 0.05
shutdown_timeout_secs: 2
sources:
  app: {{type: file, include: ["{tmp_path}/logs/*.log"], format: json}}
sinks:
  out: {{type: file, inputs: [app], path: "{tmp_path}/out.ndjson"}}
""", env={})
    calls: list[int] = []

    async with asyncio.timeout(30):
        topology = Topology(config)
        real = topology.checkpoint

        def flaky() -> None:
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("a bug in one save")
            real()

        topology.checkpoint = flaky  # type: ignore[method-assign]
        await topology.start()
        try:
            for _ in range(100):
                if len(calls) >= 3:
                    break
                await asyncio.sleep(0.05)
        finally:
            await topology.stop()
    assert len(calls) >= 3
