"""The file source: discovers files by glob, tails them, delivers batches, then checkpoints.

With ``kubernetes_api``, a kubelet log file's events also carry its pod's API metadata (refreshed when
the pod cache changes, checked once per read pass), and an excluded file is not read: it is closed
when the exclusion appears, its checkpoint stays, and when lifted it is read again from its end.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import stat
import time
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from shipper import metrics
from shipper.lines import Item, count, flatten
from shipper.sources.base import Deliver, DeliverItems
from shipper.sources.file.checkpoints import CheckpointStore, entry_path
from shipper.sources.file.config import FileSourceConfig
from shipper.sources.file.kubernetes import (
    ExcludedFiles,
    FileMetadata,
    MetadataCache,
    PodMetadataTracker,
    metadata_from_path,
)
from shipper.sources.file.opener import FileOpener, NotRegular, Opened, open_regular
from shipper.sources.file.paths import display_path, expand
from shipper.sources.file.skipped import SkippedPaths
from shipper.sources.file.tailer import Tailer, fingerprint

log = logging.getLogger("shipper.sources.file")

_READ_BUDGET = 1024 * 1024
_FORGET_CLOSED_SECS = 3600.0
_COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".zip", ".lz4")


class FileSource:
    """Tails every file matching ``include`` (and not ``exclude``), at least once, in order per file."""

    def __init__(self, name: str, config: FileSourceConfig, deliver: Deliver | None, data_dir: str | Path,
                 kube_cache: MetadataCache | None = None, *, deliver_items: DeliverItems | None = None) -> None:
        """``kube_cache``: a pod cache to use as it is (else, with ``kubernetes_api``, :meth:`run` starts
        its own). ``deliver_items`` (not ``deliver``) is handed :class:`~shipper.lines.LineBatch` columns."""
        self.name = name
        self.cfg = config
        assert (deliver is None) != (deliver_items is None), "one of deliver and deliver_items"
        self.deliver = deliver
        self.deliver_items = deliver_items
        self.store = CheckpointStore(Path(data_dir) / "checkpoints" / f"{name}.json")
        self.tailers: dict[str, Tailer] = {}
        self.node = os.environ.get("NODE_NAME") or socket.gethostname()
        self._stopping = False
        self._first_scan = True
        self._last_glob = 0.0
        self._prev_scan_wall = time.time()
        self._closed_at: dict[str, float] = {}
        self._opener: FileOpener | None = None
        self._pending: list[Opened] = []
        self._skipped = SkippedPaths(name)
        self._kube_given = kube_cache
        self._kube: PodMetadataTracker | None = None
        self._excluded = ExcludedFiles()

    # -- discovery ------------------------------------------------------------------------------

    def _matches(self) -> list[str]:
        seen: set[str] = set()
        out: list[str] = []
        for pattern in self.cfg.include:
            for p in expand(pattern, self._note_loop):
                if p not in seen and not any(fnmatch(p, ex) for ex in self.cfg.exclude):
                    seen.add(p)
                    out.append(p)
        return out

    def _note_loop(self, path: str) -> None:
        self._skipped.note(path, "loop")

    def discover(self) -> None:
        """Adopt files the opener found, notice rotated ones, and (first time) reopen rotated files
        we had not finished before a restart."""
        now = time.monotonic()
        wall = time.time()
        if self._opener is None:
            self._opener = FileOpener(self._matches, self.cfg.glob_interval_secs, self._skipped)
            self._opener.scan()  # the first scan in line, so read_from applies to what exists now
            self._opener.start()
        by_path = {t.path: t for t in self.tailers.values() if t.rotated_at is None}
        rotated_paths = {t.path for t in self.tailers.values() if t.rotated_at is not None}
        while not self._opener.found.empty():
            self._pending.append(self._opener.found.get_nowait())
        waiting: list[Opened] = []
        for o in self._pending:
            current = by_path.get(o.path)
            if current is not None and current.key != o.key and current.rotated_at is None:
                self._mark_rotated(current, now)
            elif current is None and o.path in rotated_paths and o.key not in self.tailers:
                # The path was seen missing (between a rotation's rename and the new file) and its
                # file marked rotated then: files rotated in and out since are found only now.
                self._adopt_rotated_siblings(o.path)
            if o.key in self.tailers:
                os.close(o.fd)
                continue
            if not self._adopt(o, rotated=False):
                waiting.append(o)  # no complete first line yet; the descriptor stays open
        self._pending = waiting
        for path, t in by_path.items():
            if t.rotated_at is not None:
                continue
            try:
                st = os.stat(path)
                same = f"{st.st_dev}:{st.st_ino}" == t.key
            except OSError:
                same = False
            if not same:
                self._mark_rotated(t, now)
        for key in self._excluded.gone():  # rotated away or deleted while excluded
            self._let_go(key)
            self.store.mark_closed(key)
            self._closed_at[key] = now
        if self._first_scan:
            self._reopen_rotated()
        self._first_scan = False
        self._prev_scan_wall = wall
        metrics.FILES_WATCHED.labels(self.name).set(len(self.tailers))

    def _mark_rotated(self, t: Tailer, now: float) -> None:
        t.rotated_at = now
        log.info("%s: rotated or removed; reading the old file to its end", display_path(t.path))
        self._adopt_rotated_siblings(t.path)

    def _rotated_names(self, path: str) -> Iterator[tuple[str, os.stat_result]]:
        """Regular files beside ``path`` named after it (``app.log.1``, ``0.log.20250101-...``),
        uncompressed and not excluded, with their stat."""
        directory, base = os.path.split(path)
        try:
            names = os.listdir(directory or ".")
        except OSError:
            return
        for n in names:
            if n == base or not n.startswith(base) or n.endswith(_COMPRESSED):
                continue
            candidate = os.path.join(directory, n)
            if any(fnmatch(candidate, ex) for ex in self.cfg.exclude):
                continue
            try:
                st = os.stat(candidate)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                yield candidate, st

    def _adopt_rotated_siblings(self, path: str) -> None:
        """Files rotated in and out between two scans (``app.log.1``, ``app.log.2`` ...): a file
        named after ``path`` that was renamed since the previous scan and that we never read is
        read from its start (or its checkpoint), so fast rotation loses nothing."""
        for candidate, st in self._rotated_names(path):
            key = f"{st.st_dev}:{st.st_ino}"
            if key in self.tailers or st.st_ctime < self._prev_scan_wall - 1.0:
                continue
            entry = self.store.get(key)
            if entry is not None and entry.get("closed"):
                continue
            self._open(path, st, rotated=True, real_path=candidate)

    def _reopen_rotated(self) -> None:
        """After a restart, find files renamed away before their checkpoint reached the end."""
        for key, entry in list(self.store.entries.items()):
            if key in self.tailers or entry.get("closed"):
                continue
            path = entry_path(entry)
            for candidate, st in self._rotated_names(path):
                if f"{st.st_dev}:{st.st_ino}" == key:
                    log.info("%s: resuming rotated file %s from offset %d", display_path(path),
                             display_path(candidate), entry["offset"])
                    self._open(path, st, rotated=True, real_path=candidate)
                    break

    def _open(self, path: str, st: os.stat_result, rotated: bool, real_path: str | None = None) -> None:
        """Open a file the opener does not know (a rotated name found after a restart)."""
        try:
            fd = open_regular(real_path or path, st)
        except NotRegular as exc:
            log.warning("%s: cannot open (%s)", display_path(real_path or path), exc.reason)
            return
        if fd is None:
            return
        dev, ino = st.st_dev, st.st_ino
        if self._opener is not None:
            self._opener.hold(f"{dev}:{ino}")
        if not self._adopt(Opened(path, fd, dev, ino), rotated):
            self._pending.append(Opened(path, fd, dev, ino))

    def _adopt(self, o: Opened, rotated: bool) -> bool:
        """Start tailing an open descriptor; False while the file has no complete first line.

        True also when its first line cannot be read: it is then dropped (held, not reopened).
        """
        try:
            fp = fingerprint(o.fd)
            size = os.fstat(o.fd).st_size
        except OSError as exc:  # like a failed read: this file only, and its descriptor is closed
            self._warn_unreadable(o.path, 0, exc)
            os.close(o.fd)
            return True
        if fp is None:
            return False
        entry = self.store.get(o.key)
        if entry is not None and entry.get("fp") == fp:
            offset, gen = int(entry["offset"]), int(entry.get("gen", 0))
        elif self._first_scan and self.cfg.read_from == "end" and not rotated:
            offset, gen = size, 0
        else:
            offset, gen = 0, 0
        if self._excluded.resumes_at_end(o.key):
            offset = size
        k8s: dict[str, Any] | None = None
        if self.cfg.kubernetes_metadata:
            k8s = metadata_from_path(display_path(o.path))
            if k8s is not None and self._kube is not None:
                fm = self._kube.track(o.key, k8s)
                if fm.excluded is not None:
                    os.close(o.fd)
                    self.store.set(o.key, o.path, fp, offset, gen)
                    self._exclude(o.key, o.path, fm, offset)
                    return True
                k8s = fm.kubernetes
        t = Tailer(self.name, o.path, o.fd, o.dev, o.ino, fp, offset, gen, self.cfg, self.node, k8s, batches=True)
        if rotated:
            t.rotated_at = time.monotonic()
        self.tailers[o.key] = t
        self._closed_at.pop(o.key, None)
        self.store.set(o.key, o.path, fp, offset, gen)
        log.info("%s: tailing from offset %d", display_path(o.path), offset)
        return True

    # -- the loop -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Read until :meth:`stop`; every batch is delivered before its checkpoint moves."""
        if self.cfg.kubernetes_api is not None and self._kube is None:
            self._kube = await PodMetadataTracker.open(self.name, self.cfg.kubernetes_api, self._kube_given)
        try:
            while not self._stopping:
                self._maybe_discover()
                self._refresh_kubernetes()
                progressed = await self._pass()
                self._close_finished()
                self._update_lag()
                if not progressed:
                    await asyncio.sleep(self.cfg.poll_interval_secs)
                else:
                    await asyncio.sleep(0)
        finally:
            if self._kube is not None:
                await self._kube.close()

    def _maybe_discover(self) -> None:
        now = time.monotonic()
        if now - self._last_glob >= self.cfg.glob_interval_secs:
            self._last_glob = now
            self.discover()

    async def _pass(self) -> bool:
        batch: list[Item] = []
        events = 0
        cuts: dict[str, tuple[Tailer, int]] = {}
        progressed = False
        for t in list(self.tailers.values()):
            if self._stopping:
                break
            # Look for new files between reads too: under a rotation storm a rotated file may be
            # compressed and deleted soon after; once opened, it is read to its end regardless.
            self._maybe_discover()
            first = len(batch)
            try:
                n = t.read(batch, _READ_BUDGET, self._maybe_discover)
                if n == 0 and t.check_truncated():
                    n = t.read(batch, _READ_BUDGET)
            except OSError as exc:
                self._drop_unreadable(t, exc)
                continue
            if t.group_expired() or (t.eof and t.rotated_at is not None and t.pending_group):
                t.flush_group(batch)
            if self._kube is not None:
                self._kube.flag_missing(t.key, batch, first)
            progressed |= n > 0
            cuts[t.key] = (t, t.safe_offset)
            events += count(batch[first:])
            if events >= self.cfg.batch_events:
                await self._deliver(batch, events, cuts)
                batch, events, cuts = [], 0, {}
        if batch or cuts:
            await self._deliver(batch, events, cuts)
        return progressed

    # -- Kubernetes API metadata ----------------------------------------------------------------

    def _refresh_kubernetes(self) -> None:
        """Files whose pod metadata changed get it; newly excluded ones stop, no longer excluded ones resume."""
        for key, fm in self._kube.changed() if self._kube is not None else ():
            t = self.tailers.get(key)
            if t is not None and fm.excluded is None:
                t.set_kubernetes(fm.kubernetes)
            elif t is not None:
                t.close()
                del self.tailers[key]
                self._exclude(key, t.path, fm, t.safe_offset)
            elif key in self._excluded and fm.excluded is None:
                log.info("%s: shipped again from its end", display_path(self._excluded.let_go(key)))
                self._let_go(key)  # the opener opens it again, and _adopt starts at its end

    def _exclude(self, key: str, path: str, fm: FileMetadata, offset: int) -> None:
        """Not read while excluded: the opener keeps holding its inode and its checkpoint stays."""
        self._excluded.add(key, path)
        self._closed_at.pop(key, None)
        metrics.FILES_SKIPPED.labels(self.name, "excluded").inc()
        log.info("%s: not shipped from offset %d (%s)", display_path(path), offset, fm.excluded)

    def _let_go(self, key: str) -> None:
        if self._kube is not None:
            self._kube.forget(key)
        if self._opener is not None:
            self._opener.release(key)

    def _drop_unreadable(self, t: Tailer, exc: OSError) -> None:
        """A read failed (EIO...): stop reading this file, and only this one.

        The opener keeps holding its inode, so it is not reopened and failed again every scan; its
        checkpoint stays at the last delivered line, where a restart resumes.
        """
        self._warn_unreadable(t.path, t.offset, exc)
        t.close()
        del self.tailers[t.key]
        if self._kube is not None:
            self._kube.forget(t.key)

    def _warn_unreadable(self, path: str, offset: int, exc: OSError) -> None:
        log.warning("%s: read failed at offset %d (%s); no longer read until a restart",
                    display_path(path), offset, exc.strerror or exc)
        metrics.FILES_SKIPPED.labels(self.name, "unreadable").inc()

    async def _deliver(self, batch: list[Item], events: int, cuts: dict[str, tuple[Tailer, int]]) -> None:
        if batch:
            metrics.EVENTS_RECEIVED.labels(self.name).inc(events)
            await (self.deliver_items(batch) if self.deliver_items else self.deliver(flatten(batch)))  # type: ignore[misc]
        for key, (t, off) in cuts.items():
            self.store.set(key, t.path, t.fp, off, t.gen)

    def _close_finished(self) -> None:
        now = time.monotonic()
        for key, t in list(self.tailers.items()):
            if t.rotated_at is None or not t.eof or t.pending_group:
                continue
            if now - max(t.last_growth, t.rotated_at) < self.cfg.rotate_wait_secs:
                continue
            log.info("%s: finished the rotated file at offset %d", display_path(t.path), t.offset)
            t.close()
            del self.tailers[key]
            if self._kube is not None:
                self._kube.forget(key)
            if self._opener is not None:
                self._opener.release(key)
            self.store.mark_closed(key)
            self._closed_at[key] = now
        for key, at in list(self._closed_at.items()):
            if now - at > _FORGET_CLOSED_SECS:
                self.store.remove(key)
                del self._closed_at[key]

    def _update_lag(self) -> None:
        metrics.FILE_LAG_BYTES.labels(self.name).set(sum(t.lag_bytes() for t in self.tailers.values()))

    def save_checkpoints(self, fsync: bool = True) -> None:
        """Persist checkpoints (the caller fsyncs the sink buffers first)."""
        self.store.save(fsync)

    async def stop(self) -> None:
        self._stopping = True
        if self._opener is not None:
            await asyncio.to_thread(self._opener.stop)

    def close(self) -> None:
        if self._opener is not None:
            self._opener.stop()
        for o in self._pending:
            os.close(o.fd)
        self._pending = []
        for t in self.tailers.values():
            t.close()
        self.tailers.clear()
        self._excluded = ExcludedFiles()
