"""Resend a sink's dead-lettered events after the cause was fixed.

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

import orjson

from shipper.config import ShipperConfig
from shipper.errors import ShipperError
from shipper.event import Event
from shipper.sinks._common.base import Sink
from shipper.sinks._common.dead_letter import (
    CLAIM_SUFFIX,
    FILE_MODE,
    DeadLetterLine,
    append_locked,
    dead_letter_files,
    dead_letter_path,
    entry_event,
    read_lines,
)
from shipper.sinks._common.driver import split_batches
from shipper.sinks._common.outcome import SendOutcome
from shipper.sinks.registry import AnySinkConfig, build_sink


@dataclass
class ReplayResult:
    """Counts of one replay; ``unreadable`` lines stayed in the file, each with its ``problems`` line."""

    resent: int = 0
    failed_again: int = 0
    unreadable: int = 0
    problems: list[str] = field(default_factory=list)


async def replay_dead_letters(config: ShipperConfig, sink_name: str, sink: Sink | None = None) -> ReplayResult:
    """Send every dead letter of ``sink_name`` once more (permanent errors are not retried).

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
        replayable: list[tuple[dict[str, object], Event]] = []
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
            failed = await _send(scfg, sink_name, config.data_dir, [e for _entry, e in replayable], sink)
            for entry, event in replayable:
                reason = failed.get(id(event))
                if reason is None:
                    result.resent += 1
                else:
                    result.failed_again += 1
                    kept.append(orjson.dumps({**entry, "reason": reason, "replayed": time.time()},
                                             default=str, option=orjson.OPT_NON_STR_KEYS) + b"\n")
        if kept:
            append_locked(path, b"".join(kept), mode)
        for claim in claims:
            claim.unlink()
        _fsync_dir(path.parent)
    return result


async def _send(scfg: AnySinkConfig, sink_name: str, data_dir: str, events: list[Event],
                sink: Sink | None) -> dict[int, str]:
    """Send ``events`` in batches; returns the reason of each one not accepted, by ``id()``."""
    failed: dict[int, str] = {}
    try:
        sink = sink or build_sink(sink_name, scfg, data_dir)
        await sink.start()
    except Exception as exc:  # the backend is still unusable: every entry stays, with this reason
        return {id(e): f"{type(exc).__name__}: {exc}" for e in events}
    batch_cfg = scfg.batch
    try:
        for batch in split_batches(events, batch_cfg.max_events, batch_cfg.max_bytes, sink.event_size):
            try:
                outcome = await sink.send(batch)
            except Exception as exc:  # one failed request fails its batch, not the replay
                outcome = SendOutcome(rejected=[(e, f"{type(exc).__name__}: {exc}") for e in batch])
            failed.update((id(e), r) for e, r in outcome.rejected)
            failed.update((id(e), outcome.reason or "retry") for e in outcome.retry)
    finally:
        await sink.close()
    return failed


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
