"""Finds and opens new files on a thread of its own, so a slow read never delays an open.

Under a rotation storm a rotated file may be compressed and deleted a moment after it appears;
a file we hold open is read to its end whatever happens to its name, so what matters is opening
it in time. The event loop adopts the descriptors this thread opened.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

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


class FileOpener:
    """Globs every ``interval`` seconds and opens each file (by device and inode) not held yet."""

    def __init__(self, matches: Callable[[], list[str]], interval: float) -> None:
        self._matches = matches
        self._interval = interval
        self.found: queue.SimpleQueue[Opened] = queue.SimpleQueue()
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._warned: set[str] = set()
        self._thread = threading.Thread(target=self._run, name="file-opener", daemon=True)

    def scan(self) -> None:
        """One pass: open what is new and queue it."""
        for path in self._matches():
            try:
                st = os.stat(path)
            except OSError:
                continue
            key = f"{st.st_dev}:{st.st_ino}"
            with self._lock:
                if key in self._held:
                    continue
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError as exc:
                if path not in self._warned:
                    log.warning("%s: cannot open (%s)", path, exc.strerror)
                    self._warned.add(path)
                continue
            fst = os.fstat(fd)
            if (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino):
                os.close(fd)  # replaced between stat and open; the next pass sees the new one
                continue
            with self._lock:
                self._held.add(key)
            self.found.put(Opened(path, fd, st.st_dev, st.st_ino))

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
