"""Finds and opens new files on a thread of its own, so a slow read never delays an open.

Under a rotation storm a rotated file may be compressed and deleted a moment after it appears;
a file we hold open is read to its end whatever happens to its name, so what matters is opening
it in time. The event loop adopts the descriptors this thread opened.

Only regular files are opened (a symlink is followed to one: the kubelet's
``/var/log/containers/*.log`` are links into ``/var/log/pods``). Anything else is stat'ed, never
opened, and skipped with a reason: opening a FIFO blocks until a writer comes, a device such as
``/dev/zero`` never ends, a directory cannot be read. The open itself is non-blocking and checked
with ``fstat``, since the path can be swapped for a FIFO between the stat and the open. The
descriptor stays non-blocking: reads of a regular file ignore it, and a file that only looks
regular (``/proc/kmsg``) then fails a read instead of blocking the event loop.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from shipper.sources.file.skipped import SkippedPaths, kind_of

log = logging.getLogger("shipper.sources.file")


@dataclass(slots=True)
class Opened:
    path: str
    fd: int
    dev: int
    ino: int

    @property
    def key(self) -> str:
        return f"{self.dev}:{self.ino}"


class NotRegular(Exception):
    """A path that is not read, with the reason counted in ``FILES_SKIPPED``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _reason(exc: OSError) -> str | None:
    if exc.errno == errno.ELOOP:
        return "loop"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EIO):
        return "unreadable"
    return None  # gone, or a dangling link (the kubelet's, once a pod is deleted): nothing to say


def stat_regular(path: str) -> os.stat_result | None:
    """The regular file ``path`` leads to (following links); None if it is gone.

    Raises :class:`NotRegular` for anything that must not be opened.
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        reason = _reason(exc)
        if reason is None:
            return None
        raise NotRegular(reason) from None
    kind = kind_of(st.st_mode)
    if kind is not None:
        raise NotRegular(kind)
    return st


def open_regular(path: str, st: os.stat_result) -> int | None:
    """A descriptor on the file ``st`` describes; None if ``path`` now leads elsewhere.

    Raises :class:`NotRegular` if ``path`` cannot be read or was swapped for a non-regular file.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        reason = _reason(exc)
        if reason is None:
            return None
        raise NotRegular(reason) from None
    try:
        fst = os.fstat(fd)
        kind = kind_of(fst.st_mode)
        if kind is not None:
            raise NotRegular(kind)
        if (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino):
            os.close(fd)  # replaced by another file between stat and open; the next pass sees it
            return None
    except BaseException:
        os.close(fd)
        raise
    return fd


class FileOpener:
    """Globs every ``interval`` seconds and opens each file (by device and inode) not held yet."""

    def __init__(self, matches: Callable[[], list[str]], interval: float, skipped: SkippedPaths) -> None:
        self._matches = matches
        self._interval = interval
        self._skipped = skipped
        self.found: queue.SimpleQueue[Opened] = queue.SimpleQueue()
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="file-opener", daemon=True)

    def scan(self) -> None:
        """One pass: open what is new and queue it; note what is skipped."""
        for path in self._matches():
            try:
                st = stat_regular(path)
                if st is None:
                    continue
                key = f"{st.st_dev}:{st.st_ino}"
                with self._lock:
                    held = key in self._held
                fd = None if held else open_regular(path, st)
            except NotRegular as exc:
                self._skipped.note(path, exc.reason)
                continue
            self._skipped.forget(path)  # readable now: if it turns into something else, warn again
            if fd is None:
                continue
            with self._lock:
                self._held.add(key)
            self.found.put(Opened(path, fd, st.st_dev, st.st_ino))
        self._skipped.end_scan()

    def hold(self, key: str) -> None:
        """A file the loop opened itself (after a restart): do not open it again."""
        with self._lock:
            self._held.add(key)

    def release(self, key: str) -> None:
        """The loop closed this file; if its inode shows up again it is opened again."""
        with self._lock:
            self._held.discard(key)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.scan()
            except Exception:  # never let discovery die; the next pass tries again
                log.exception("file discovery failed")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        while True:
            try:
                os.close(self.found.get_nowait().fd)
            except queue.Empty:
                break
            except OSError:
                continue
