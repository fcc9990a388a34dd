"""/ready says whether the pipeline can ship now: sink checks, sources, the event loop; dead sources come back."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from shipper import metrics
from shipper.api.health import Health
from shipper.api.server import ApiServer
from shipper.config import parse_config
from shipper.event import Event
from shipper.sinks import registry
from shipper.sinks._common.base import Sink
from shipper.sinks._common.outcome import SendOutcome
from shipper.sources.file.source import FileSource
from shipper.topology import Topology

pytestmark = pytest.mark.anyio


class HeldSink(Sink):
    """Its health check passes only once ``passing`` is set; records what it is sent."""

    passing = False
    sent: list[int] = []

    async def healthcheck(self) -> None:
        while not HeldSink.passing:
            await asyncio.sleep(0.01)

    async def send(self, events: list[Event]) -> SendOutcome:
        HeldSink.sent.extend(e.record["n"] for e in events)
        return SendOutcome.ok(1)


@pytest.fixture
def held_sink(monkeypatch: pytest.MonkeyPatch) -> type[HeldSink]:
    monkeypatch.setitem(registry._IMPLEMENTATIONS, "file", f"{__name__}:HeldSink")
    HeldSink.passing = False
    HeldSink.sent = []
    return HeldSink


def _config(tmp: Path) -> Any:
    (tmp / "logs").mkdir(exist_ok=True)
    return parse_config(f"""
data_dir: {tmp}/data
api: {{enabled: false}}
shutdown_timeout_secs: 2
sources:
  app: {{type: file, include: ["{tmp}/logs/*.log"], format: json, glob_interval_secs: 0.05, poll_interval_secs: 0.01}}
sinks:
  out: {{type: file, inputs: [app], path: unused, batch: {{timeout_secs: 0.01}}}}
""", env={})


def _get(port: int, path: str = "/ready") -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


async def _until(cond: Any, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if await asyncio.to_thread(cond):
            return True
        await asyncio.sleep(0.05)
    return False


def _append(tmp: Path, n: int) -> None:
    with (tmp / "logs" / "a.log").open("a") as f:
        f.write(json.dumps({"message": "m", "n": n}) + "\n")


async def test_ready_waits_for_the_sink_health_check(tmp_path: Path, held_sink: type[HeldSink]) -> None:
    health = Health()
    api = ApiServer("127.0.0.1:0", health)
    api.start()
    topo = Topology(_config(tmp_path), health)
    await topo.start()
    try:
        assert await _until(lambda: _get(api.port)[1]["sources"] == {"app": True})
        status, body = await asyncio.to_thread(_get, api.port)
        assert status == 503 and body["sinks"] == {"out": None} and body["started"] is True
        held_sink.passing = True
        assert await _until(lambda: _get(api.port)[0] == 200)
        assert _get(api.port)[1]["sinks"] == {"out": True}
    finally:
        await topo.stop()
        api.stop()


async def test_ready_is_503_while_the_event_loop_is_blocked(tmp_path: Path, held_sink: type[HeldSink]) -> None:
    held_sink.passing = True

    health = Health(max_heartbeat_age_secs=0.5)
    api = ApiServer("127.0.0.1:0", health)
    api.start()
    topo = Topology(_config(tmp_path), health)
    await topo.start()
    try:
        assert await _until(lambda: _get(api.port)[0] == 200)
        seen: list[tuple[int, dict[str, Any]]] = []
        probe = threading.Timer(1.0, lambda: seen.append(_get(api.port)))
        probe.start()
        time.sleep(1.5)  # the loop hangs (a blocking call); the API thread still answers
        probe.join()
        status, body = seen[0]
        assert status == 503 and body["loop_heartbeat_age_secs"] >= 0.9
        assert await _until(lambda: _get(api.port)[0] == 200)
    finally:
        await topo.stop()
        api.stop()


async def test_a_dead_source_is_restarted_and_ready_follows(
    tmp_path: Path, held_sink: type[HeldSink], monkeypatch: pytest.MonkeyPatch
) -> None:
    held_sink.passing = True
    runs = 0
    died = threading.Event()
    real_run = FileSource.run

    async def run_that_dies_once(self: FileSource) -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            await real_run_until(self, lambda: len(held_sink.sent) >= 1)
            died.set()
            raise RuntimeError("boom")
        await real_run(self)

    async def real_run_until(self: FileSource, cond: Any) -> None:
        task = asyncio.create_task(real_run(self))
        while not cond():
            await asyncio.sleep(0.01)
        await self.stop()
        await task

    monkeypatch.setattr(FileSource, "run", run_that_dies_once)
    restarts = metrics.COMPONENT_RESTARTS.labels("source:app")
    before = restarts._value.get()

    health = Health()
    api = ApiServer("127.0.0.1:0", health)
    api.start()
    config = _config(tmp_path)
    _append(tmp_path, 0)
    topo = Topology(config, health)
    await topo.start()
    try:
        assert await _until(died.is_set)
        status, body = await asyncio.to_thread(_get, api.port)
        assert status == 503 and body["sources"] == {"app": False}
        assert metrics.REGISTRY.get_sample_value("ecvi_shipper_component_up", {"component": "source:app"}) == 0
        assert await _until(lambda: _get(api.port)[0] == 200, timeout=5)  # restarted after ~1 s
        assert runs == 2 and restarts._value.get() == before + 1
        assert metrics.REGISTRY.get_sample_value("ecvi_shipper_component_up", {"component": "source:app"}) == 1
        _append(tmp_path, 1)  # the new source resumes from the checkpoint: no loss
        assert await _until(lambda: 1 in held_sink.sent)
    finally:
        await topo.stop()
        api.stop()
    assert sorted(set(held_sink.sent)) == [0, 1]


async def test_ready_is_503_while_a_sink_has_workers_down(
    tmp_path: Path, held_sink: type[HeldSink], monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipper.sinks._common.driver import SinkDriver

    held_sink.passing = True

    health = Health()
    api = ApiServer("127.0.0.1:0", health)
    api.start()
    topo = Topology(_config(tmp_path), health)
    await topo.start()
    try:
        assert await _until(lambda: _get(api.port)[0] == 200)
        with monkeypatch.context() as m:
            m.setattr(SinkDriver, "up", property(lambda self: False))  # a worker died, not yet restarted
            assert await _until(lambda: _get(api.port)[0] == 503)
            assert _get(api.port)[1]["sink_workers"] == {"out": False}
        assert await _until(lambda: _get(api.port)[0] == 200)
    finally:
        await topo.stop()
        api.stop()
