"""Resend a sink's dead-lettered events after the cause was fixed."""

from __future__ import annotations

import os

import orjson

from shipper.config import ShipperConfig
from shipper.event import Event
from shipper.sinks._common.dead_letter import dead_letter_path, entry_event, read_dead_letters
from shipper.sinks._common.driver import split_batches
from shipper.sinks._common.outcome import SendOutcome
from shipper.sinks.registry import build_sink


async def replay_dead_letters(config: ShipperConfig, sink_name: str) -> tuple[int, int]:
    """Send every dead letter once more (no retries of permanent errors); rewrite the file with
    only what failed again. Returns ``(resent, failed_again)``."""
    scfg = config.sinks[sink_name]
    path = dead_letter_path(config.data_dir, sink_name)
    events: list[Event] = [entry_event(e) for e in read_dead_letters(path) if "event" in e]
    if not events:
        return 0, 0
    sink = build_sink(sink_name, scfg, config.data_dir)
    await sink.start()
    failed: list[tuple[Event, str]] = []
    try:
        for batch in split_batches(events, scfg.batch.max_events, scfg.batch.max_bytes, sink.event_size):
            try:
                outcome = await sink.send(batch)
            except Exception as exc:
                outcome = SendOutcome(rejected=[(e, f"{type(exc).__name__}: {exc}") for e in batch])
            failed.extend(outcome.rejected)
            failed.extend((e, outcome.reason or "retry") for e in outcome.retry)
    finally:
        await sink.close()
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as f:
        for e, reason in failed:
            f.write(orjson.dumps({"sink": sink_name, "reason": reason, "event": {
                "record": e.record, "raw": e.raw, "ts_ns": e.ts_ns, "meta": e.meta}}, default=str) + b"\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return len(events) - len(failed), len(failed)
