"""SIGHUP in-process: a config that fails to start after the preflight puts the previous one back."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from shipper import metrics
from shipper.config import parse_config
from shipper.runner import run_shipper
from shipper.sinks import registry
from shipper.sinks.file.sink import FileSink


class BrokenStartSink(FileSink):
    """A file sink, except that one named ``bad`` cannot start."""

    async def start(self) -> None:
        if self.name == "bad":
            raise RuntimeError("cannot reach the backend\nsecond line")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config_text(tmp: Path, port: int, extra_sink: str = "") -> str:
    return f"""
data_dir: {tmp}/data
api: {{address: "127.0.0.1:{port}"}}
shutdown_timeout_secs: 2
sources:
  app: {{type: file, include: ["{tmp}/logs/*.log"], format: json, glob_interval_secs: 0.05, poll_interval_secs: 0.01}}
sinks:
  out: {{type: file, inputs: [app], path: "{tmp}/out.ndjson", batch: {{timeout_secs: 0.01}}}}{extra_sink}
"""


def _reloads(outcome: str) -> float:
    return metrics.REGISTRY.get_sample_value("ecvi_shipper_config_reloads_total", {"outcome": outcome}) or 0.0


def _lines(p: Path) -> int:
    return len(p.read_text().splitlines()) if p.exists() else 0


async def _until(cond: Any, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        await asyncio.sleep(0.05)
    return False


def _append(tmp: Path, n: int) -> None:
    with (tmp / "logs" / "a.log").open("a") as f:
        f.write(json.dumps({"message": "m", "n": n}) + "\n")


@pytest.fixture
def shipper_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, int]:
    monkeypatch.setitem(registry._IMPLEMENTATIONS, "file", f"{__name__}:BrokenStartSink")
    (tmp_path / "logs").mkdir()
    port = _free_port()
    cfg = tmp_path / "shipper.yaml"
    cfg.write_text(_config_text(tmp_path, port))
    return tmp_path, cfg, port


def test_a_config_that_fails_to_start_puts_the_previous_one_back(
    shipper_files: tuple[Path, Path, int], caplog: pytest.LogCaptureFixture
) -> None:
    tmp, cfg, port = shipper_files
    before = _reloads("start_failed")

    async def go() -> None:
        task = asyncio.create_task(run_shipper(parse_config(cfg.read_text(), env={}), cfg))
        _append(tmp, 0)
        assert await _until(lambda: _lines(tmp / "out.ndjson") == 1)
        bad = f'\n  bad: {{type: file, inputs: [app], path: "{tmp}/bad.ndjson"}}'
        cfg.write_text(_config_text(tmp, port, bad))
        os.kill(os.getpid(), signal.SIGHUP)
        assert await _until(lambda: _reloads("start_failed") == before + 1)
        assert not task.done()
        _append(tmp, 1)
        assert await _until(lambda: _lines(tmp / "out.ndjson") == 2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())
    failed = [r.getMessage() for r in caplog.records if "reload failed" in r.getMessage()]
    assert failed == ["reload failed, starting the previous config again: "
                      "sinks.bad: RuntimeError: cannot reach the backend"]
    assert [json.loads(line)["n"] for line in (tmp / "out.ndjson").read_text().splitlines()] == [0, 1]


def test_the_same_config_again_is_counted_unchanged(shipper_files: tuple[Path, Path, int]) -> None:
    tmp, cfg, _port = shipper_files
    before = _reloads("unchanged")

    async def go() -> None:
        task = asyncio.create_task(run_shipper(parse_config(cfg.read_text(), env={}), cfg))
        _append(tmp, 0)
        assert await _until(lambda: _lines(tmp / "out.ndjson") == 1)
        os.kill(os.getpid(), signal.SIGHUP)
        assert await _until(lambda: _reloads("unchanged") == before + 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())


def test_an_api_address_in_use_keeps_the_api_where_it_was(shipper_files: tuple[Path, Path, int]) -> None:
    tmp, cfg, port = shipper_files
    before = _reloads("start_failed")

    def answers(p: int) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{p}/metrics", timeout=2) as r:
                return int(r.status) == 200
        except OSError:
            return False

    async def go() -> None:
        task = asyncio.create_task(run_shipper(parse_config(cfg.read_text(), env={}), cfg))
        assert await _until(lambda: answers(port))
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            cfg.write_text(_config_text(tmp, taken.getsockname()[1]))
            os.kill(os.getpid(), signal.SIGHUP)
            assert await _until(lambda: _reloads("start_failed") == before + 1)
        assert await asyncio.to_thread(answers, port)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())
