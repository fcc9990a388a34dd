"""Dead-letter files: events a sink gave up on, one JSON line each, with the backend's reason.

``<data_dir>/dead_letter/<sink>.ndjson``, mode 0640. A writer appends under an exclusive
``flock`` and checks that the file it locked is still the one at the path, so a replay that
renames the file away (and then takes the same lock before reading) never misses an entry that
was being written. A write never fails because of an event's content: a record that cannot be
JSON (nested too deep, odd keys, lone surrogates) is stored as its raw line and a bounded repr
with the reason. An event resent from a dead-letter entry (a replay) that fails again is written as
that entry, with its first ``time`` and fields, the new reason and a ``replayed`` time.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import reprlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from shipper.event import Event

FILE_MODE = 0o640
CLAIM_SUFFIX = ".replaying-"
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist, _REPR.maxstring, _REPR.maxother = 8, 50, 50, 2000, 200


def dead_letter_path(data_dir: str | Path, sink: str) -> Path:
    return Path(data_dir) / "dead_letter" / f"{sink}.ndjson"


def dead_letter_files(data_dir: str | Path, sink: str) -> list[Path]:
    """The live file and any taken by a replay that has not finished (oldest claim first)."""
    live = dead_letter_path(data_dir, sink)
    return [live, *sorted(live.parent.glob(live.name + CLAIM_SUFFIX + "*"))]


class DeadLetterWriter:
    """Appends rejected events to ``<data_dir>/dead_letter/<sink>.ndjson`` (fsynced).

    ``mode`` is set on the file at each write when given (a replay keeps the mode the file had).
    ``earlier`` maps ``id(event)`` of events being replayed to the entries they were read from.
    """

    def __init__(self, data_dir: str | Path, sink: str, *, mode: int | None = None,
                 earlier: dict[int, dict[str, Any]] | None = None) -> None:
        self.path = dead_letter_path(data_dir, sink)
        self.sink = sink
        self.mode = mode
        self.earlier = earlier or {}

    def write(self, rejected: list[tuple[Event, str]]) -> None:
        """Append one line per event; raises only ``OSError`` (the file cannot be written)."""
        if not rejected:
            return
        now = time.time()
        lines = b"".join(encode_entry(now, self.sink, e, reason, self.earlier.get(id(e))) for e, reason in rejected)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        append_locked(self.path, lines, self.mode)


def encode_entry(now: float, sink: str, event: Event, reason: str, earlier: dict[str, Any] | None = None) -> bytes:
    """One dead-letter line; an event whose record cannot be JSON keeps its raw line and a repr.

    ``earlier`` is the entry the event was replayed from: it is kept, with the new reason and
    the time of the replay.
    """
    if earlier is not None:
        with contextlib.suppress(Exception):  # cannot fail for a parsed entry; if it does, a fresh one
            replayed = {**earlier, "reason": reason, "replayed": now}
            return orjson.dumps(replayed, default=str, option=orjson.OPT_NON_STR_KEYS) + b"\n"
    try:
        record: Any = event.record
        entry = {"time": now, "sink": sink, "reason": reason,
                 "event": {"record": record, "raw": event.raw, "ts_ns": event.ts_ns, "meta": event.meta}}
        return orjson.dumps(entry, default=str, option=orjson.OPT_NON_STR_KEYS) + b"\n"
    except Exception as exc:  # any content problem must still leave a dead letter
        why = f"{type(exc).__name__}: {_safe_text(str(exc))}"
    safe = {
        "time": now, "sink": _safe_text(sink), "reason": _safe_text(reason),
        "unencodable": f"record not storable as JSON ({why}); kept as its raw line and a repr",
        "event": {"raw": _safe_text(event.raw), "ts_ns": _safe_int(event.ts_ns), "meta": _safe_json(event.meta),
                  "record_repr": _safe_repr(event)},
    }
    return orjson.dumps(safe) + b"\n"


def _safe_text(value: object) -> str:
    text = value if isinstance(value, str) else _REPR.repr(value)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _safe_int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 1 << 63 else 0


def _safe_json(value: object) -> Any:
    try:
        return orjson.loads(orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS))
    except Exception:
        return {"repr": _safe_text(value)}


def _safe_repr(event: Event) -> str:
    try:
        return _safe_text(_REPR.repr(event.record))
    except Exception as exc:
        return f"<unprintable: {type(exc).__name__}>"


def append_locked(path: Path, data: bytes, mode: int | None = None) -> None:
    """Append ``data`` under an exclusive lock to the file that is at ``path`` now, then fsync.

    ``mode`` is set on the file when given (a replay putting entries back keeps the old mode).
    """
    while True:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if not _still_at(fd, path):
                continue  # renamed away by a replay between open and lock: write to the new file
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if mode is not None:
                os.fchmod(fd, mode)
            os.fsync(fd)
            return
        finally:
            os.close(fd)


def _still_at(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (st.st_dev, st.st_ino)


@dataclass(frozen=True)
class DeadLetterLine:
    """One line of a dead-letter file: its entry, or why it is not one."""

    number: int
    line: bytes
    entry: dict[str, Any] | None
    problem: str | None


def read_lines(path: str | Path) -> Iterator[DeadLetterLine]:
    """Every non-blank line of a dead-letter file; a line that is not a JSON object has a problem."""
    p = Path(path)
    with contextlib.suppress(FileNotFoundError), p.open("rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                yield DeadLetterLine(n, line, None, f"line {n}: not JSON ({exc})")
                continue
            if isinstance(entry, dict):
                yield DeadLetterLine(n, line, entry, None)
            else:
                yield DeadLetterLine(n, line, None, f"line {n}: not a JSON object")


def read_dead_letters(path: str | Path) -> Iterator[dict[str, Any]]:
    """Entries of a dead-letter file; a damaged line is reported as an entry with ``error``."""
    for dl in read_lines(path):
        yield dl.entry if dl.entry is not None else {"error": dl.problem}


def entry_event(entry: dict[str, Any]) -> Event:
    """The event stored in an entry; ``ValueError`` names what is missing (the entry cannot be resent)."""
    ev = entry.get("event")
    if not isinstance(ev, dict):
        raise ValueError("no event object")
    record, raw, ts_ns, meta = ev.get("record"), ev.get("raw"), ev.get("ts_ns"), ev.get("meta") or {}
    if not isinstance(record, dict):
        why = entry.get("unencodable")
        raise ValueError(f"no record ({why})" if why else "no record object")
    if not isinstance(raw, str):
        raise ValueError("no raw line")
    if not isinstance(ts_ns, int) or isinstance(ts_ns, bool):
        raise ValueError("no integer ts_ns")
    if not isinstance(meta, dict):
        raise ValueError("meta is not an object")
    return Event(record, raw, ts_ns, meta)
