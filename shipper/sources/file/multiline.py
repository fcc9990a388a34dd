"""Group ``text`` lines into events: a start pattern, or Python tracebacks by default."""

from __future__ import annotations

import re

_TRACEBACK_CONT = re.compile(
    r"^(\s|Traceback \(most recent call last\):|During handling of the above exception"
    r"|The above exception was the direct cause|\s*\^+\s*$)"
)
_EXC_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Warning|Fault)?(: .*)?$")


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
