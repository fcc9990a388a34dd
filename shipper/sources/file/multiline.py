"""Group lines into events: a start pattern, or Python tracebacks by default.

``text`` files are grouped line by line (:class:`LineGrouper`, driven by the tailer). Container
logs (``cri``/``docker``) are grouped by :class:`StreamGroups`: per stream, because stdout and
stderr interleave in one file, after the runtime's partial lines are reassembled, and never
across a message shaped like a JSON object (``{`` ... ``}``), which is always an event of its own.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from shipper.sources.file.config import MultilineConfig

_TRACEBACK_CONT = re.compile(
    r"^(\s|Traceback \(most recent call last\):|During handling of the above exception"
    r"|The above exception was the direct cause|\s*\^+\s*$)"
)
_EXC_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Warning|Fault)?(: .*)?$")

# Streams grouped apart. Any other value (a docker line may name anything, or nothing) shares one
# slot, so a hostile file cannot make the tailer hold a group per made-up stream name.
STREAMS = ("stdout", "stderr")


class LineGrouper:
    """Decides, line by line, whether a line continues the current event."""

    def __init__(self, start_pattern: str | None) -> None:
        self._start = re.compile(start_pattern) if start_pattern else None
        self._in_traceback = False

    def continues(self, line: str, have_group: bool) -> bool:
        """True if ``line`` belongs to the event being grouped."""
        if not have_group:
            self._in_traceback = line.startswith("Traceback (most recent call last):")
            return False
        if self._start is not None:
            return not self._start.search(line)
        if _TRACEBACK_CONT.match(line):
            if line.startswith(("Traceback", "During handling", "The above exception")):
                self._in_traceback = True
            return True
        if self._in_traceback and _EXC_LINE.match(line):
            # The exception line ends the traceback; it belongs to it.
            self._in_traceback = False
            return True
        self._in_traceback = False
        return False


@dataclass(slots=True)
class Pending:
    """Pieces waiting to become one event, bounded to ``max_bytes`` characters (then truncated).

    ``start`` is the file offset of its first line: where a restart must resume so none is lost.
    """

    start: int
    ts: str | None
    stream: Any
    pieces: list[str] = field(default_factory=list)
    size: int = 0
    lines: int = 0
    truncated: bool = False

    def add(self, piece: str, max_bytes: int, truncated: bool = False) -> bool:
        """Append ``piece`` (cut at the bound); True if this is what first made it truncated."""
        first_cut = False
        if self.size + len(piece) > max_bytes:
            piece = piece[: max(0, max_bytes - self.size)]
            first_cut = not self.truncated
            self.truncated = True
        self.pieces.append(piece)
        self.size += len(piece)
        self.truncated |= truncated
        return first_cut

    def text(self) -> str:
        return "".join(self.pieces)


class Emit(Protocol):
    """The tailer's event maker (``record``: the payload already parsed, if it was)."""

    def __call__(self, payload: str, ts: str | None, stream: Any, off: int, truncated: bool,
                 out: list[Any], record: dict[str, Any] | None = None) -> None: ...


@dataclass(slots=True)
class _Stream:
    grouper: LineGrouper
    line: Pending | None = None  # a line the runtime split (CRI ``P``, docker without newline)
    group: Pending | None = None  # whole lines grouped so far
    touched: float = 0.0  # monotonic time of its last piece


class StreamGroups:
    """Multiline grouping of one container log file, one pending group per stream.

    A line is first reassembled from the runtime's partial pieces; the whole message then either
    continues its stream's group (the :class:`LineGrouper` rules, at most ``max_lines`` lines and
    ``max_bytes`` characters) or ends it and starts the next. A message shaped like a JSON object
    (starts with ``{``, ends with ``}``; not parsed here) ends its stream's group and is emitted
    alone. A group whose stream has been quiet for ``timeout_ms`` is complete. :attr:`start` is the
    earliest offset still pending.
    """

    def __init__(self, cfg: MultilineConfig, max_bytes: int, emit: Emit, too_long: Callable[[], None]) -> None:
        self._pattern = cfg.start_pattern
        self._max_lines = cfg.max_lines
        self._timeout = cfg.timeout_ms / 1000
        self._max_bytes = max_bytes
        self._emit = emit
        self._too_long = too_long
        self._streams: dict[str | None, _Stream] = {}

    def add(self, payload: str, ts: str | None, stream: Any, partial: bool, off: int, truncated: bool,
            out: list[Any]) -> None:
        """One record of the file: a whole line, or a ``partial`` piece of one."""
        key = stream if stream in STREAMS else None
        s = self._streams.get(key)
        if s is None:
            s = self._streams[key] = _Stream(LineGrouper(self._pattern))
        line = s.line
        if line is None and not partial:
            self._message(s, payload, ts, stream, off, truncated, out)
            return
        if line is None:
            line = s.line = Pending(off, ts, stream)
        if line.add(payload, self._max_bytes, truncated):
            self._too_long()
        if partial:
            s.touched = time.monotonic()
            return
        s.line = None
        self._message(s, line.text(), line.ts, line.stream, line.start, line.truncated, out)

    def _message(self, s: _Stream, msg: str, ts: str | None, stream: Any, off: int, truncated: bool,
                 out: list[Any]) -> None:
        if msg[:1] == "{" and (msg[-1:] == "}" or msg.rstrip()[-1:] == "}"):
            # Shaped like a JSON object: alone, whatever the rules say. The shape is checked, not
            # parsed: the record is parsed later only if a sink needs its fields.
            if s.group is not None:
                self._flush(s, out)
            self._emit(msg, ts, stream, off, truncated, out)
            return
        s.touched = time.monotonic()  # something waits on this stream from now
        group = s.group
        if group is not None and s.grouper.continues(msg, True) and group.lines < self._max_lines:
            if group.add("\n" + msg, self._max_bytes, truncated):
                self._too_long()
            group.lines += 1
            return
        if group is None:
            s.grouper.continues(msg, False)
        else:
            self._flush(s, out)
        group = s.group = Pending(off, ts, stream, lines=1)
        if group.add(msg, self._max_bytes, truncated):
            self._too_long()

    def _flush(self, s: _Stream, out: list[Any]) -> None:
        group = s.group
        if group is not None:
            s.group = None
            self._emit(group.text(), group.ts, group.stream, group.start, group.truncated, out)

    @property
    def pending(self) -> bool:
        """Whether any stream holds a group or a partial line."""
        return any(s.group is not None or s.line is not None for s in self._streams.values())

    @property
    def start(self) -> int | None:
        """The earliest offset not yet emitted in full (None: nothing pending)."""
        starts = [p.start for s in self._streams.values() for p in (s.group, s.line) if p is not None]
        return min(starts) if starts else None

    def flush_expired(self, out: list[Any], now: float) -> None:
        """Emit the groups whose stream has been quiet for ``timeout_ms``; a partial line keeps waiting."""
        for s in self._streams.values():
            if s.group is not None and now - s.touched >= self._timeout:
                self._flush(s, out)

    def flush_all(self, out: list[Any]) -> None:
        """Emit everything pending (the file will not grow): a partial line counts as whole."""
        for s in sorted(self._streams.values(), key=_earliest):
            line = s.line
            if line is not None:
                s.line = None
                self._message(s, line.text(), line.ts, line.stream, line.start, line.truncated, out)
            self._flush(s, out)

    def clear(self) -> None:
        """Forget everything pending (the file was truncated and is read again from the start)."""
        self._streams.clear()


def _earliest(s: _Stream) -> int:
    return min((p.start for p in (s.group, s.line) if p is not None), default=0)
