"""The shared sink loop: batching, partial retries, Retry-After, dead letters, in-order acks."""

import asyncio
from pathlib import Path

import orjson
import pytest

from shipper import metrics
from shipper.buffer import DiskBuffer
from shipper.event import Event
from shipper.sinks._common.base import Sink
from shipper.sinks._common.batching import split_batches
from shipper.sinks._common.config import RetryConfig, SinkConfigBase
from shipper.sinks._common.driver import SinkDriver
from shipper.sinks._common.outcome import PermanentSinkError, SendOutcome, TransientSinkError
from shipper.sinks._common.retry import backoff_delay, parse_retry_after
from tests.factories import numbered_event


def _cfg(**kw: object) -> SinkConfigBase:
    base = {"inputs": ["x"], "batch": {"max_events": 10, "timeout_secs": 0.01},
            "request": {"concurrency": 1, "retry": {"initial_backoff_secs": 0.01, "max_backoff_secs": 0.05}},
            "healthcheck": False}
    base.update(kw)
    return SinkConfigBase.model_validate(base)


class ScriptedSink(Sink):
    """Answers each send with the next scripted behaviour, then accepts everything."""

    def __init__(self, script: list[object]) -> None:
        super().__init__("scripted", None, "")
        self.script = list(script)
        self.calls: list[list[int]] = []
        self.accepted: list[int] = []
        self.times: list[float] = []

    async def send(self, events: list[Event]) -> SendOutcome:
        self.calls.append([e.record["n"] for e in events])
        self.times.append(asyncio.get_running_loop().time())
        step = self.script.pop(0) if self.script else "ok"
        if isinstance(step, Exception):
            raise step
        if callable(step):
            out: SendOutcome = step(events)
        else:
            out = SendOutcome()
        failed = {id(e) for e in out.retry} | {id(e) for e, _ in out.rejected}
        self.accepted.extend(e.record["n"] for e in events if id(e) not in failed)
        return out


async def _run(tmp_path: Path, sink: ScriptedSink, n: int, **cfg: object) -> SinkDriver:
    buf = DiskBuffer(tmp_path / "buf", sink.name)
    drv = SinkDriver(sink, buf, _cfg(**cfg), str(tmp_path))
    await drv.start()
    await buf.append([numbered_event(i) for i in range(n)])
    for _ in range(500):
        if buf.pending_events == 0:
            break
        await asyncio.sleep(0.01)
    await drv.stop(1)
    return drv


def test_split_batches_respects_both_limits() -> None:
    evs = [Event({}, "x" * 100, 0) for _ in range(25)]
    sizes = [len(b) for b in split_batches(evs, 10, 950, lambda e: len(e.raw))]
    assert sizes == [9, 9, 7]
    big = [Event({}, "x" * 5000, 0)]
    assert [len(b) for b in split_batches(big, 10, 1000, lambda e: len(e.raw))] == [1]


@pytest.mark.anyio
async def test_partial_failure_retries_only_failed_events(tmp_path: Path) -> None:
    def half(events: list[Event]) -> SendOutcome:
        return SendOutcome(retry=[e for e in events if e.record["n"] % 2], reason="429 too many")

    sink = ScriptedSink([half])
    await _run(tmp_path, sink, 10)
    assert sink.calls[0] == list(range(10))
    assert sink.calls[1] == [1, 3, 5, 7, 9]
    assert sorted(sink.accepted) == list(range(10))  # each accepted exactly once


@pytest.mark.anyio
async def test_retry_after_is_honoured(tmp_path: Path) -> None:
    sink = ScriptedSink([TransientSinkError("scripted", "503", retry_after=0.3)])
    await _run(tmp_path, sink, 3, request={"concurrency": 1, "retry": {
        "initial_backoff_secs": 0.001, "max_backoff_secs": 5}})
    assert len(sink.calls) == 2
    assert sink.times[1] - sink.times[0] >= 0.29


@pytest.mark.anyio
async def test_permanent_errors_go_to_dead_letter_not_retried(tmp_path: Path) -> None:
    def reject_some(events: list[Event]) -> SendOutcome:
        return SendOutcome(rejected=[(e, "mapper_parsing_exception: bad field") for e in events[:2]])

    sink = ScriptedSink([reject_some, PermanentSinkError("scripted", "401 unauthorized")])
    await _run(tmp_path, sink, 20)
    assert len(sink.calls) == 2  # never retried
    lines = (tmp_path / "dead_letter" / "scripted.ndjson").read_bytes().splitlines()
    entries = [orjson.loads(x) for x in lines]
    assert [e["event"]["record"]["n"] for e in entries] == [0, 1, *range(10, 20)]
    assert entries[0]["reason"].startswith("mapper_parsing_exception")
    assert entries[5]["reason"] == "401 unauthorized"


@pytest.mark.anyio
async def test_max_attempts_bounds_retries(tmp_path: Path) -> None:
    sink = ScriptedSink([TransientSinkError("scripted", "down")] * 100)
    await _run(tmp_path, sink, 1, request={"concurrency": 1, "retry": {
        "initial_backoff_secs": 0.001, "max_backoff_secs": 0.002, "max_attempts": 3}})
    assert len(sink.calls) == 3
    entry = orjson.loads((tmp_path / "dead_letter" / "scripted.ndjson").read_bytes().splitlines()[0])
    assert "gave up after 3 attempts" in entry["reason"]


@pytest.mark.anyio
async def test_unexpected_exception_on_one_event_is_final_after_one_more_try(tmp_path: Path) -> None:
    sink = ScriptedSink([RuntimeError("bug")] * 100)
    await _run(tmp_path, sink, 1)
    assert sink.calls == [[0], [0]]
    entry = orjson.loads((tmp_path / "dead_letter" / "scripted.ndjson").read_bytes())
    assert entry["reason"] == "unexpected RuntimeError: bug"


@pytest.mark.anyio
async def test_unexpected_exception_once_is_retried(tmp_path: Path) -> None:
    sink = ScriptedSink([RuntimeError("blip")])
    await _run(tmp_path, sink, 3)
    assert sorted(sink.accepted) == [0, 1, 2]
    assert not (tmp_path / "dead_letter" / "scripted.ndjson").exists()


@pytest.mark.anyio
async def test_metrics_recorded(tmp_path: Path) -> None:
    before = metrics.REGISTRY.get_sample_value("ecvi_shipper_events_sent_total", {"sink": "scripted"}) or 0
    sink = ScriptedSink([TransientSinkError("scripted", "timeout: x")])
    await _run(tmp_path, sink, 5)
    after = metrics.REGISTRY.get_sample_value("ecvi_shipper_events_sent_total", {"sink": "scripted"})
    assert after == before + 5
    assert (metrics.REGISTRY.get_sample_value("ecvi_shipper_retries_total",
                                              {"sink": "scripted", "reason": "timeout"}) or 0) >= 1


@pytest.mark.parametrize("attempt", [1, 2, 5, 20])
def test_backoff_full_jitter_bounds(attempt: int) -> None:
    cfg = RetryConfig(initial_backoff_secs=0.5, max_backoff_secs=10)
    cap = min(10, 0.5 * 2 ** (attempt - 1))
    delays = [backoff_delay(attempt, cfg) for _ in range(200)]
    assert all(0 <= d <= cap for d in delays)
    assert max(delays) > cap / 2  # jitter spans the range
    assert backoff_delay(attempt, cfg, retry_after=7) >= 7
    assert backoff_delay(attempt, cfg, retry_after=1000) <= 10


def test_parse_retry_after() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("soon") is None
