"""Matched paths that are not read (directories, FIFOs, devices, loops...): warned and counted once each.

Discovery meets the same paths on every scan, so each skipped path is remembered until it stops
matching; a flood of them (a hostile pod can create thousands) costs a few warning lines per scan
and a bounded memory: past ``limit`` remembered paths, new ones are neither warned nor counted.
"""

from __future__ import annotations

import logging
import stat
import threading
from collections import Counter

from shipper import metrics
from shipper.sources.file.paths import display_path

log = logging.getLogger("shipper.sources.file")

_LIMIT = 10_000
_WARN_PER_SCAN = 10


def kind_of(mode: int) -> str | None:
    """The reason a file of this mode is not read; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "other"


class SkippedPaths:
    """Which matched paths are skipped and why; :meth:`end_scan` forgets those no longer seen."""

    def __init__(self, source: str, limit: int = _LIMIT, warn_per_scan: int = _WARN_PER_SCAN) -> None:
        self.source = source
        self._limit = limit
        self._warn_per_scan = warn_per_scan
        self._paths: dict[str, tuple[str, int]] = {}  # path -> (reason, last scan it was seen in)
        self._scan = 0
        self._warned_now = 0
        self._unwarned: Counter[str] = Counter()
        self._full = False
        self._lock = threading.Lock()

    def note(self, path: str, reason: str) -> None:
        """``path`` matched ``include`` but is not read, for ``reason``."""
        with self._lock:
            known = self._paths.get(path)
            if known is not None and known[0] == reason:
                self._paths[path] = (reason, self._scan)
                return
            if known is None and len(self._paths) >= self._limit:
                if not self._full:
                    self._full = True
                    log.warning("source %s: more than %d paths matching include are not regular files; "
                                "further ones are skipped without a warning or a count", self.source, self._limit)
                return
            self._paths[path] = (reason, self._scan)
            metrics.FILES_SKIPPED.labels(self.source, reason).inc()
            if self._warned_now < self._warn_per_scan:
                self._warned_now += 1
                log.warning("%s: skipped, not a regular file we can read (%s)", display_path(path), reason)
            else:
                self._unwarned[reason] += 1

    def forget(self, path: str) -> None:
        """``path`` was opened as a regular file: if it turns into something else, warn again."""
        with self._lock:
            self._paths.pop(path, None)

    def end_scan(self) -> None:
        """Summarise the warnings held back this scan and forget the paths that no longer match."""
        with self._lock:
            if self._unwarned:
                reasons = ", ".join(f"{r}={n}" for r, n in sorted(self._unwarned.items()))
                log.warning("source %s: %d more paths matching include skipped (%s)", self.source,
                            sum(self._unwarned.values()), reasons)
            self._paths = {p: v for p, v in self._paths.items() if v[1] == self._scan}
            if len(self._paths) < self._limit // 2:
                self._full = False
            self._scan += 1
            self._warned_now = 0
            self._unwarned.clear()

    def __len__(self) -> int:
        return len(self._paths)
