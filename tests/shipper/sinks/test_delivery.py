"""Delivery on its own (no buffer): what restore and replay rely on."""

from pathlib import Path

import orjson
import pytest

from shipper.event import Event
from shipper.sinks._common.base import Sink
from shipper.sinks._common.config import BatchConfig, RetryConfig
from shipper.sinks._common.dead_letter import DeadLetterWriter
from shipper.sinks._common.delivery import Delivery, DeliveryReport
from shipper.sinks._common.outcome import SendOutcome, TransientSinkError
from tests.factories import numbered_event

FAST = RetryConfig(initial_backoff_secs=0.001, max_backoff_secs=0.002, max_attempts=3)


class Backend(Sink):
    """Fails the first ``outages`` sends as a whole, cannot encode ``poison``, rejects ``refuse``."""

    def __init__(self, outages: int = 0, poison: int = -1, refuse: int = -1) -> None:
        super().__init__("backend", None, "")
        self.outages, self.poison, self.refuse = outages, poison, refuse
        self.batches: list[list[int]] = []
        self.stored: list[int] = []

    async def send(self, events: list[Event]) -> SendOutcome:
        ns = [e.record["n"] for e in events]
        self.batches.append(ns)
        if self.outages:
            self.outages -= 1
            raise TransientSinkError(self.name, "http_503: busy")
        if self.poison in ns:
            raise ValueError("cannot encode")
        refused = [(e, "http_400: bad") for e in events if e.record["n"] == self.refuse]
        self.stored.extend(n for n in ns if n != self.refuse)
        return SendOutcome(rejected=refused)


def _events(n: int) -> list[Event]:
    return [numbered_event(i) for i in range(n)]


def _dead(tmp_path: Path) -> list[dict]:
    path = tmp_path / "dead_letter" / "backend.ndjson"
    return [orjson.loads(x) for x in path.read_bytes().splitlines()] if path.exists() else []


@pytest.mark.anyio
async def test_report_counts_each_event_once(tmp_path: Path) -> None:
    accepted_calls: list[int] = []
    sink = Backend(outages=1, poison=5, refuse=2)
    delivery = Delivery(sink, FAST, DeadLetterWriter(tmp_path, "backend"),
                        on_accepted=lambda: accepted_calls.append(1))
    report = await delivery.deliver(_events(8))
    assert report == DeliveryReport(accepted=6, dead_lettered=2, dropped=0)
    assert sorted(sink.stored) == [0, 1, 3, 4, 6, 7]
    assert sorted((d["event"]["record"]["n"], d["reason"]) for d in _dead(tmp_path)) == [
        (2, "http_400: bad"), (5, "unexpected ValueError: cannot encode")]
    assert accepted_calls  # the driver hears that the backend takes events


@pytest.mark.anyio
async def test_bounded_retry_gives_up_with_the_reason(tmp_path: Path) -> None:
    sink = Backend(outages=100)
    report = await Delivery(sink, FAST, DeadLetterWriter(tmp_path, "backend")).deliver(_events(2))
    assert report == DeliveryReport(accepted=0, dead_lettered=2)
    assert len(sink.batches) == 3
    assert {d["reason"] for d in _dead(tmp_path)} == {"gave up after 3 attempts: http_503: busy"}


@pytest.mark.anyio
async def test_deliver_all_cuts_batches_within_the_limits(tmp_path: Path) -> None:
    sink = Backend()
    delivery = Delivery(sink, FAST, DeadLetterWriter(tmp_path, "backend"))
    report = await delivery.deliver_all(_events(25), BatchConfig(max_events=10))
    assert [len(b) for b in sink.batches] == [10, 10, 5]
    assert report.accepted == 25 and not _dead(tmp_path)
