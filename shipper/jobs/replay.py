"""``dead-letter replay``: resend a sink's dead-lettered events after the cause was fixed.

The events go through the sink's :class:`~shipper.sinks._common.delivery.Delivery`, as live traffic
does, with a bounded retry (:data:`REPLAY_RETRY`): what fails again is written back by the same
dead-letter writer, as the entry it was read from with the new reason.

Nothing is lost, whatever runs alongside: the file is first renamed to a claim
(``<sink>.ndjson.replaying-<ns>``), so dead letters written meanwhile start a new file; the claim
is read under the writers' lock (a write in progress finishes first). What fails again, and every
line that cannot be resent (not JSON, no record), goes back into the live file with its fields
and the file's mode, and only then is the claim removed. A replay killed half way leaves its claim,
which the next replay takes up (a crash after putting entries back can repeat them: at least once).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipper.config import ShipperConfig
from shipper.errors import ShipperError
from shipper.event import Event
from shipper.sinks._common.base import Sink
from shipper.sinks._common.config import RetryConfig
from shipper.sinks._common.dead_letter import (
    CLAIM_SUFFIX,
    FILE_MODE,
    DeadLetterLine,
    DeadLetterWriter,
    append_locked,
    dead_letter_files,
    dead_letter_path,
    entry_event,
    read_lines,
)
from shipper.sinks._common.delivery import Delivery
from shipper.sinks.registry import AnySinkConfig, build_sink

#: A replay is run by an operator who waits for it: a short outage is ridden out, a longer one
#: leaves the entries in the file for the next replay.
REPLAY_RETRY = RetryConfig(initial_backoff_secs=0.5, max_backoff_secs=5.0, max_attempts=3)


@dataclass
class ReplayResult:
    """Counts of one replay; ``unreadable`` lines stayed in the file, each with its ``problems`` line."""

    resent: int = 0
    failed_again: int = 0
    unreadable: int = 0
    problems: list[str] = field(default_factory=list)


async def replay_dead_letters(config: ShipperConfig, sink_name: str, sink: Sink | None = None) -> ReplayResult:
    """Send every dead letter of ``sink_name`` once more (transient failures retried within
    :data:`REPLAY_RETRY`, permanent ones not at all).

    ``sink`` replaces the one built from the config (tests). Raises :class:`ShipperError` when
    another replay of the same sink is running.
    """
    scfg = config.sinks[sink_name]
    path = dead_letter_path(config.data_dir, sink_name)
    if not path.parent.is_dir():
        return ReplayResult()
    with _replay_lock(path):
        claims = _claim(path)
        result = ReplayResult()
        mode = FILE_MODE
        kept: list[bytes] = []
        replayable: list[tuple[dict[str, Any], Event]] = []
        for claim in claims:
            mode = os.stat(claim).st_mode & 0o7777
            for dl in _read_claim(claim):
                problem = dl.problem
                if dl.entry is not None:
                    try:
                        replayable.append((dl.entry, entry_event(dl.entry)))
                        continue
                    except ValueError as exc:
                        problem = f"line {dl.number}: {exc}"
                result.unreadable += 1
                result.problems.append(f"{path} {problem} (kept in the file)")
                kept.append(dl.line if dl.line.endswith(b"\n") else dl.line + b"\n")
        if replayable:
            writer = DeadLetterWriter(config.data_dir, sink_name, mode=mode,
                                      earlier={id(event): entry for entry, event in replayable})
            failed = await _resend(scfg, sink_name, config.data_dir, [e for _entry, e in replayable], sink, writer)
            result.resent, result.failed_again = len(replayable) - failed, failed
        if kept:
            append_locked(path, b"".join(kept), mode)
        for claim in claims:
            claim.unlink()
        _fsync_dir(path.parent)
    return result


async def _resend(scfg: AnySinkConfig, sink_name: str, data_dir: str, events: list[Event], sink: Sink | None,
                  writer: DeadLetterWriter) -> int:
    """Deliver ``events``; returns how many were written back as dead letters.

    A sink that cannot start (the backend is still unusable) writes every entry back with why.
    """
    try:
        sink = sink or build_sink(sink_name, scfg, data_dir)
        await sink.start()
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        writer.write([(e, reason) for e in events])
        return len(events)
    delivery = Delivery(sink, REPLAY_RETRY, writer)
    try:
        report = await delivery.deliver_all(events, scfg.batch)
    finally:
        await sink.close()
    return report.dead_lettered + report.dropped


@contextlib.contextmanager
def _replay_lock(path: Path) -> Iterator[None]:
    """One replay per sink at a time (two would both resend an interrupted replay's claim)."""
    fd = os.open(path.with_name(path.name + ".replay-lock"), os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ShipperError(f"{path}: another replay of this sink is running") from None
        yield
    finally:
        os.close(fd)


def _claim(path: Path) -> list[Path]:
    """Rename the live file to a new claim; returns every claim, older unfinished ones first."""
    claim = path.with_name(f"{path.name}{CLAIM_SUFFIX}{time.time_ns()}")
    with contextlib.suppress(FileNotFoundError):
        os.rename(path, claim)
    return dead_letter_files(path.parent.parent, path.name.removesuffix(".ndjson"))[1:]


def _read_claim(claim: Path) -> Iterator[DeadLetterLine]:
    # A writer that had the file open before the rename holds the lock until its line is complete.
    fd = os.open(claim, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield from read_lines(claim)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
