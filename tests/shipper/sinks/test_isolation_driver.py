"""One poison event costs only itself in the sink driver, and a worker that ends is restarted."""

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from shipper import metrics
from shipper.buffer import DiskBuffer
from shipper.event import Event
from shipper.sinks._common.base import Sink
from shipper.sinks._common.config import SinkConfigBase
from shipper.sinks._common.dead_letter import read_dead_letters
from shipper.sinks._common.delivery import DeliveryReport
from shipper.sinks._common.driver import SinkDriver
from shipper.sinks._common.outcome import SendOutcome
from tests.factories import numbered_event

T0 = 1_700_000_000_000_000_000  # the events' times: event n is at T0 + n ns


def _cfg(concurrency: int = 1, max_events: int = 50) -> SinkConfigBase:
    return SinkConfigBase.model_validate({
        "inputs": ["x"], "healthcheck": False, "batch": {"max_events": max_events, "timeout_secs": 0.01},
        "request": {"concurrency": concurrency, "retry": {"initial_backoff_secs": 0.01, "max_backoff_secs": 0.05}}})


class PoisonSink(Sink):
    """Accepts every batch unless it holds a poison event, which it cannot encode (TypeError)."""

    def __init__(self, name: str, poison: set[int]) -> None:
        super().__init__(name, None, "")
        self.poison = poison
        self.accepted: list[int] = []
        self.calls = 0

    async def send(self, events: list[Event]) -> SendOutcome:
        self.calls += 1
        bad = [e.record["n"] for e in events if e.record["n"] in self.poison]
        if bad:
            raise TypeError(f"Type is not JSON serializable: event {bad[0]}")
        self.accepted.extend(e.record["n"] for e in events)
        return SendOutcome.ok()




async def _until(cond: Any, secs: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + secs
    while not cond() and loop.time() < end:
        await asyncio.sleep(0.005)


def _sample(name: str, metric: str) -> float:
    return metrics.REGISTRY.get_sample_value(metric, {"component": f"sink:{name}"}) or 0.0


@pytest.mark.anyio
async def test_unencodable_event_is_isolated_and_worker_stays(tmp_path: Path) -> None:
    sink = PoisonSink("poison", {7, 33})

    buf = DiskBuffer(tmp_path / "buf", sink.name)
    drv = SinkDriver(sink, buf, _cfg(), str(tmp_path))
    await drv.start()
    await buf.append([numbered_event(i, ts_ns=T0 + i) for i in range(40)])
    await _until(lambda: buf.pending_events == 0)
    assert buf.pending_events == 0
    worker = drv._workers[0]
    # the worker is alive and delivers more
    await buf.append([numbered_event(i, ts_ns=T0 + i) for i in range(100, 110)])
    await _until(lambda: buf.pending_events == 0)
    assert drv._workers[0] is worker and not worker.done()
    assert drv.up
    await drv.stop(1)
    assert sorted(sink.accepted) == [i for i in range(40) if i not in (7, 33)] + list(range(100, 110))
    dead = list(read_dead_letters(drv.dead.path))
    assert sorted(d["event"]["record"]["n"] for d in dead) == [7, 33]
    assert all(d["reason"].startswith("unexpected TypeError: Type is not JSON serializable") for d in dead)
    assert sink.calls < 40  # bisected, not one request per event


@pytest.mark.anyio
async def test_dead_letter_that_cannot_be_written_costs_only_its_event(tmp_path: Path) -> None:
    sink = PoisonSink("poison-dl", {3, 5})

    before = metrics.REGISTRY.get_sample_value(
        "ecvi_shipper_events_dropped_total", {"component": "sink:poison-dl", "reason": "dead_letter_unwritable"}) or 0
    buf = DiskBuffer(tmp_path / "buf", sink.name)
    drv = SinkDriver(sink, buf, _cfg(), str(tmp_path))
    real_write = drv.dead.write

    def write(rejected: list[tuple[Event, str]]) -> None:
        if any(e.record["n"] == 3 for e, _r in rejected):
            raise TypeError("Recursion limit reached")
        real_write(rejected)

    drv.dead.write = write  # type: ignore[method-assign]
    await drv.start()
    await buf.append([numbered_event(i, ts_ns=T0 + i) for i in range(8)])
    await _until(lambda: buf.pending_events == 0)
    await buf.append([numbered_event(8, ts_ns=T0 + 8), numbered_event(9, ts_ns=T0 + 9)])
    await _until(lambda: buf.pending_events == 0)
    assert drv.up
    await drv.stop(1)
    assert sorted(sink.accepted) == [0, 1, 2, 4, 6, 7, 8, 9]
    assert [d["event"]["record"]["n"] for d in read_dead_letters(drv.dead.path)] == [5]
    assert metrics.REGISTRY.get_sample_value(
        "ecvi_shipper_events_dropped_total", {"component": "sink:poison-dl", "reason": "dead_letter_unwritable"}
    ) == before + 1


class FlakyBuffer(DiskBuffer):
    """A disk buffer whose first reads fail (an I/O error on the segment)."""

    fail_reads = 0

    async def read(self, max_events: int, max_bytes: int, timeout: float, *, round_up: bool = False) -> Any:
        if self.fail_reads > 0:
            self.fail_reads -= 1
            raise OSError(5, "Input/output error")
        return await super().read(max_events, max_bytes, timeout, round_up=round_up)


@pytest.mark.anyio
async def test_supervisor_restarts_a_worker_whose_loop_raised(tmp_path: Path) -> None:
    name = "flaky-read"
    sink = PoisonSink(name, set())
    up_seen: list[float] = []
    driver_up: list[bool] = []
    restarts_before = _sample(name, "ecvi_shipper_component_restarts_total")

    buf = FlakyBuffer(tmp_path / "buf", name)
    drv = SinkDriver(sink, buf, _cfg(concurrency=2), str(tmp_path))
    await drv.start()
    assert drv.up and _sample(name, "ecvi_shipper_component_up") == 1

    async def watch() -> None:
        while True:
            up_seen.append(_sample(name, "ecvi_shipper_component_up"))
            driver_up.append(drv.up)
            await asyncio.sleep(0.001)

    watcher = asyncio.create_task(watch())
    buf.fail_reads = 2
    await buf.append([numbered_event(i, ts_ns=T0 + i) for i in range(20)])  # wakes the workers: both reads fail
    await _until(lambda: _sample(name, "ecvi_shipper_component_restarts_total") >= restarts_before + 2
                 and drv.up)
    await _until(lambda: buf.pending_events == 0)
    await asyncio.sleep(0.02)
    watcher.cancel()
    assert drv.up
    assert _sample(name, "ecvi_shipper_component_up") == 1
    await buf.append([numbered_event(i, ts_ns=T0 + i) for i in range(20, 25)])
    await _until(lambda: buf.pending_events == 0)
    await drv.stop(1)
    assert not drv.up
    assert _sample(name, "ecvi_shipper_component_up") == 0
    assert _sample(name, "ecvi_shipper_component_restarts_total") == restarts_before + 2
    assert 0.0 in up_seen and up_seen[-1] == 1.0
    assert up_seen.index(0.0) < len(up_seen) - 1 - up_seen[::-1].index(1.0)  # 0, then 1 again
    assert False in driver_up and driver_up[-1] is True
    assert sorted(sink.accepted) == list(range(25))


@pytest.mark.anyio
async def test_restarted_worker_resumes_the_read_it_held(tmp_path: Path) -> None:
    """A worker killed mid-delivery leaves its read unacknowledged; its replacement delivers it."""
    name = "killed"

    class SlowSink(PoisonSink):
        gate: asyncio.Event

        async def send(self, events: list[Event]) -> SendOutcome:
            await self.gate.wait()
            return await super().send(events)

    sink = SlowSink(name, set())

    sink.gate = asyncio.Event()
    buf = DiskBuffer(tmp_path / "buf", name)
    drv = SinkDriver(sink, buf, _cfg(), str(tmp_path))
    await drv.start()
    await buf.append([numbered_event(i, ts_ns=T0 + i) for i in range(5)])
    await _until(lambda: bool(drv._held[0]))
    drv._workers[0].cancel()  # dies while holding the read
    await _until(lambda: not drv.up)
    await _until(lambda: drv.up)
    sink.gate.set()
    await _until(lambda: buf.pending_events == 0)
    assert buf.pending_events == 0
    await drv.stop(1)
    assert sink.accepted == [0, 1, 2, 3, 4]


@pytest.mark.anyio
@pytest.mark.parametrize("fail_times, delivered", [(2, True), (100, False)])
async def test_error_outside_the_sink_is_retried_then_dead_lettered(tmp_path: Path, fail_times: int,
                                                               delivered: bool) -> None:
    """An exception escaping delivery does not end the worker; the read is retried, not acknowledged."""
    name = f"escape{fail_times}"
    sink = PoisonSink(name, set())

    buf = DiskBuffer(tmp_path / "buf", name)
    drv = SinkDriver(sink, buf, _cfg(), str(tmp_path))
    real = drv.delivery.deliver
    left = [fail_times]

    async def deliver(events: list[Event]) -> DeliveryReport:
        if left[0] > 0:
            left[0] -= 1
            raise RuntimeError("bug in the loop")
        return await real(events)

    drv.delivery.deliver = deliver  # type: ignore[method-assign]
    await drv.start()
    worker = drv._workers[0]
    await buf.append([numbered_event(i, ts_ns=T0 + i) for i in range(4)])
    await _until(lambda: buf.pending_events == 0)
    assert buf.pending_events == 0
    assert drv._workers[0] is worker and not worker.done()
    await drv.stop(1)
    if delivered:
        assert sink.accepted == [0, 1, 2, 3]
        assert not drv.dead.path.exists()
    else:
        assert sink.accepted == []
        dead = [orjson.loads(x) for x in drv.dead.path.read_bytes().splitlines()]
        assert [d["event"]["record"]["n"] for d in dead] == [0, 1, 2, 3]
        assert dead[0]["reason"].startswith("delivery failed 5 times: RuntimeError: bug in the loop")
