"""A sink held shut by a gate, for the backpressure tests: it refuses (503) until opened."""

from __future__ import annotations

import pytest

from shipper.event import Event
from shipper.sinks import registry
from shipper.sinks._common.base import Sink
from shipper.sinks._common.outcome import SendOutcome, TransientSinkError


class GateSink(Sink):
    """Refuses everything (503) while closed; records what it accepts."""

    gate_open = False
    accepted: list[int] = []

    async def send(self, events: list[Event]) -> SendOutcome:
        if not GateSink.gate_open:
            raise TransientSinkError(self.name, "503 service unavailable")
        GateSink.accepted.extend(e.record["n"] for e in events)
        return SendOutcome.ok(sum(len(e.raw) for e in events))


def install_gate_sink(monkeypatch: pytest.MonkeyPatch) -> type[GateSink]:
    """Build ``type: file`` sinks as a closed :class:`GateSink` for the rest of the test."""
    monkeypatch.setitem(registry._IMPLEMENTATIONS, "file", f"{__name__}:GateSink")
    GateSink.gate_open = False
    GateSink.accepted = []
    return GateSink
