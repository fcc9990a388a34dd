"""The collector while the shipper runs: start-up frozen, gen-0 threshold raised; as before after."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from shipper import metrics
from shipper.config import parse_config
from shipper.runner import GC_GEN0_THRESHOLD, run_shipper


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _reloads(outcome: str) -> float:
    return metrics.REGISTRY.get_sample_value("ecvi_shipper_config_reloads_total", {"outcome": outcome}) or 0.0


async def _until(cond: Any, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        await asyncio.sleep(0.05)
    return False


def test_collector_is_tuned_while_running_and_restored_after(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "a.log").write_text(json.dumps({"message": "m"}) + "\n")
    out = tmp_path / "out.ndjson"
    cfg = tmp_path / "shipper.yaml"
    cfg.write_text(f"""
data_dir: {tmp_path}/data
api: {{address: "127.0.0.1:{_free_port()}"}}
sources:
  app: {{type: file, include: ["{tmp_path}/logs/*.log"], format: json, glob_interval_secs: 0.05}}
sinks:
  out: {{type: file, inputs: [app], path: "{out}", batch: {{timeout_secs: 0.01}}}}
""")
    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    seen: dict[str, Any] = {}

    applied = _reloads("applied")

    async def go() -> None:
        task = asyncio.create_task(run_shipper(parse_config(cfg.read_text(), env={}), cfg))
        assert await _until(lambda: out.exists() and out.read_text().count("\n") == 1)
        seen["running"] = (gc.get_threshold()[0], gc.get_freeze_count())
        cfg.write_text(cfg.read_text().replace("timeout_secs: 0.01", "timeout_secs: 0.02"))
        os.kill(os.getpid(), signal.SIGHUP)  # a reload unfreezes, then freezes the new topology
        assert await _until(lambda: _reloads("applied") == applied + 1)
        seen["reloaded"] = (gc.get_threshold()[0], gc.get_freeze_count())
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())
    assert seen["running"][0] == GC_GEN0_THRESHOLD and seen["running"][1] > 0
    assert seen["reloaded"][0] == GC_GEN0_THRESHOLD and seen["reloaded"][1] > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
