"""Builders shared by the jobs' tests: a scripted exporter, archived lines, days."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import orjson

from shipper.archive.days import day_bounds_ns
from shipper.archive.objects import encode_line
from shipper.errors import BackendError
from shipper.jobs.exporters.base import Exporter, Unit

DAY = date(2025, 1, 15)
DAY_START, DAY_END = day_bounds_ns(DAY)


def loki_line(ts: int, text: str, **labels: str) -> bytes:
    return encode_line({"ts_ns": ts, "line": text, "labels": labels or {"service": "api"}, "metadata": {}})


class ScriptedExporter(Exporter):
    """Serves fixed lines per unit; can fail after some lines, like a backend going away mid-run."""

    def __init__(self, units: dict[str, list[tuple[int, bytes]]], backend: str = "loki",
                 fail_after: int | None = None) -> None:
        self.backend = backend
        self.data = units
        self.fail_after = fail_after
        self.served = 0

    def source(self) -> dict[str, Any]:
        return {"backend": self.backend, "endpoint": "http://backend.test"}

    def units(self, day: date) -> list[Unit]:
        return [Unit(name, {"query": f"q-{name}"}) for name in sorted(self.data)]

    def lines(self, unit: Unit, day: date) -> Iterator[tuple[int, bytes]]:
        for ts, line in self.data[unit.name]:
            if self.fail_after is not None and self.served >= self.fail_after:
                raise BackendError("backend.test went away")
            self.served += 1
            yield ts, line

    def counts(self, day: date) -> dict[str, int]:
        return {name: len(lines) for name, lines in self.data.items()}


def sample_units(n_units: int = 2, per_unit: int = 50) -> dict[str, list[tuple[int, bytes]]]:
    out = {}
    for u in range(n_units):
        lines = []
        for i in range(per_unit):
            ts = DAY_START + (i * 1_000_000_007) % (DAY_END - DAY_START)
            lines.append((ts, loki_line(ts, f"unit {u} line {i}", service=f"s{u}")))
        out[f"stream={u:016x}"] = sorted(lines)
    return out


def doc(data: bytes) -> Any:
    return orjson.loads(data)
