"""Dead-letter files: events a sink gave up on, one JSON line each, with the backend's reason."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from shipper.event import Event


def dead_letter_path(data_dir: str | Path, sink: str) -> Path:
    return Path(data_dir) / "dead_letter" / f"{sink}.ndjson"


class DeadLetterWriter:
    """Appends rejected events to ``<data_dir>/dead_letter/<sink>.ndjson`` (fsynced)."""

    def __init__(self, data_dir: str | Path, sink: str) -> None:
        self.path = dead_letter_path(data_dir, sink)
        self.sink = sink

    def write(self, rejected: list[tuple[Event, str]]) -> None:
        if not rejected:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        now = time.time()
        lines = b"".join(
            orjson.dumps(
                {"time": now, "sink": self.sink, "reason": reason,
                 "event": {"record": e.record, "raw": e.raw, "ts_ns": e.ts_ns, "meta": e.meta}},
                default=str,
            ) + b"\n"
            for e, reason in rejected
        )
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, lines)
            os.fsync(fd)
        finally:
            os.close(fd)


def read_dead_letters(path: str | Path) -> Iterator[dict[str, Any]]:
    """Entries of a dead-letter file; a damaged line is reported as an entry with ``error``."""
    p = Path(path)
    if not p.exists():
        return
    with p.open("rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                yield {"error": f"line {n}: {exc}"}


def entry_event(entry: dict[str, Any]) -> Event:
    ev = entry["event"]
    return Event(ev["record"], ev["raw"], int(ev["ts_ns"]), ev.get("meta") or {})
