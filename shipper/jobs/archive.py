"""``archive run``: export UTC days from a backend into gzip NDJSON objects, then the day's manifest.

Objects first, manifest last: a day without a manifest is unfinished, whatever objects it holds.
Object names are deterministic (``<unit>/part-00000.ndjson.gz``) and so are their bytes, so a run
after a crash re-exports the day, keeps the objects that are already there with the same SHA-256,
rewrites the others, removes the parts the new export no longer has, and writes the manifest.

A day whose manifest passes the quick check is checked for late lines instead: the backend's count
per unit is compared with the manifest's. When the backend holds more (a shipper drained a backlog
into a day already archived), the day is exported again as a new version beside the old one, which
is kept and stays verifiable (see :mod:`shipper.archive.layout`). Fewer events in the backend than
in the archive (the backend deleted some) never replace an archive: they are reported.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from shipper.archive.days import day_start_ns, is_over
from shipper.archive.layout import (
    EXPORT_OBJECT,
    MANIFEST_NAME,
    SLICE_MANIFEST,
    VERSIONED_MANIFEST,
    day_prefix,
    export_object_key,
    in_version,
    manifest_key,
    version_prefix,
)
from shipper.archive.manifest import Manifest, ObjectEntry, build_manifest
from shipper.archive.objects import DEFAULT_MAX_OBJECT_BYTES, Part, PartWriter, sha256_hex
from shipper.archive.storage.base import ObjectStore
from shipper.errors import ArchiveConflict, JobError
from shipper.jobs.exporters.base import Exporter, Unit
from shipper.jobs.verify import read_manifest, verify_day, write_manifest

log = logging.getLogger("shipper.jobs")




class Progress(Protocol):
    """Where a run reports how far it got (a progress bar on a terminal): units done, events so far."""

    def start(self, label: str, total: int) -> None: ...
    def unit_done(self, events: int) -> None: ...
    def finish(self) -> None: ...


class NoProgress:
    def start(self, label: str, total: int) -> None:
        pass

    def unit_done(self, events: int) -> None:
        pass

    def finish(self) -> None:
        pass


@dataclass(slots=True)
class DayResult:
    """What a run did with one day. ``status``: archived, skipped, expired, failed (sealed for seal)."""

    day: date
    status: str
    events: int = 0
    objects: int = 0
    reused: int = 0
    bytes: int = 0
    uncompressed_bytes: int = 0
    seconds: float = 0.0
    error: str = ""
    problems: list[str] = field(default_factory=list)
    backend: str = ""
    archive: str = ""
    #: The day has a manifest whose objects passed the check (it may still have changed since).
    verified: bool = False
    version: int = 0
    #: Units the backend holds more events of than the archive, and how many more in all.
    changed_units: list[str] = field(default_factory=list)
    late_events: int = 0
    #: The day changed in the backend and is not archived again yet (the re-export failed).
    rearchive_pending: bool = False
    late_check_seconds: float | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"backend": self.backend} if self.backend else {}
        if self.archive:
            out["archive"] = self.archive
        out |= {
            "day": self.day.isoformat(), "status": self.status, "events": self.events, "objects": self.objects,
            "reused_objects": self.reused, "bytes": self.bytes, "uncompressed_bytes": self.uncompressed_bytes,
            "seconds": round(self.seconds, 3),
        }
        out |= {"verified": self.verified, "version": self.version}
        if self.late_check_seconds is not None:
            out |= {"late_check_seconds": round(self.late_check_seconds, 3), "late_events": self.late_events,
                    "changed_units": self.changed_units, "rearchive_pending": self.rearchive_pending}
        if self.seconds > 0 and self.status in ("archived", "rearchived", "sealed"):
            out["events_per_second"] = round(self.events / self.seconds, 1)
            out["mib_per_second"] = round(self.uncompressed_bytes / self.seconds / 1048576, 2)
        if self.error:
            out["error"] = self.error
        if self.problems:
            out["problems"] = self.problems
        return out


def upload_part(store: ObjectStore, key: str, part: Part) -> bool:
    """Write ``part`` unless the same bytes are already there; True when they were (reused)."""
    info = store.stat(key)
    if info is not None and info.size == len(part.data) and info.sha256 == part.sha256:
        return True
    store.put(key, part.data, part.sha256)
    return False


def archive_day(
    exporter: Exporter,
    store: ObjectStore,
    day: date,
    *,
    now: datetime,
    retention: timedelta | None = None,
    max_object_bytes: int = DEFAULT_MAX_OBJECT_BYTES,
    level: int = 6,
    force: bool = False,
    progress: Progress | None = None,
    late_check: bool = True,
    concurrency: int = 1,
) -> DayResult:
    """Archive one day, or check an archived one for late lines (see the module docstring).

    Failures are returned, not raised.
    """
    began = time.monotonic()
    try:
        result = _archive_day(exporter, store, day, now, retention, max_object_bytes, level, force,
                              progress or NoProgress(), late_check, concurrency)
    except JobError as exc:
        log.error("archive of %s from %s failed: %s", day, exporter.backend, exc)
        result = DayResult(day, "failed", error=str(exc))
    result.seconds = time.monotonic() - began
    return result


def _archive_day(exporter: Exporter, store: ObjectStore, day: date, now: datetime, retention: timedelta | None,
                 max_object_bytes: int, level: int, force: bool, progress: Progress, late_check: bool,
                 concurrency: int) -> DayResult:
    if not is_over(day, now):
        raise JobError(f"{day} is not over yet (UTC): archive a day once it has ended")
    existing = read_manifest(store, day)
    version = 1
    late: DayResult | None = None
    if existing is not None:
        if existing.route != "export" or existing.backend != exporter.backend:
            raise ArchiveConflict(f"{store.describe(manifest_key(day))} is a {existing.route} archive of "
                                  f"{existing.backend or 'the s3 sink'}: archive {exporter.backend} elsewhere")
        version = existing.version
        if not force:
            report = verify_day(store, day, deep=False)
            if not report.ok:
                return DayResult(day, "failed", error="the day's archive exists but does not verify (run "
                                 "`archive verify`; --force exports it again)",
                                 problems=[str(p) for p in report.problems])
            late = _from_manifest(DayResult(day, "skipped", verified=True), existing)
            if late_check:
                _compare_counts(exporter, existing, late)
            if not late.changed_units:
                return late
            version = existing.version + 1
            _keep(store, day, existing.version)
    elif (retention is not None and not force and exporter.expires_by_age
          and day_start_ns(day) < int((now - retention).timestamp()) * 1_000_000_000):
        return DayResult(day, "expired", error=f"the day began more than {retention.days} days ago: "
                         f"{exporter.backend} may already have deleted part of it (--force archives what is left)")
    try:
        result = _export_day(exporter, store, day, now, version, max_object_bytes, level, progress, concurrency)
    except JobError as exc:
        if late is None:
            raise
        log.error("re-archive of %s from %s failed: %s", day, exporter.backend, exc)
        late.status, late.error, late.rearchive_pending = "failed", f"re-archive failed: {exc}", True
        return late
    if late is not None:
        result.status = "rearchived" if result.status == "archived" else result.status
        result.changed_units, result.late_events = late.changed_units, late.late_events
        result.late_check_seconds, result.problems = late.late_check_seconds, late.problems + result.problems
        if result.status == "failed":
            result.verified, result.rearchive_pending = True, True  # the previous version still stands
    return result


def _compare_counts(exporter: Exporter, manifest: Manifest, result: DayResult) -> None:
    """Fill ``result`` with the units the backend now holds more events of than ``manifest``."""
    began = time.monotonic()
    try:
        counts = exporter.counts(manifest.day)
    except JobError as exc:
        result.status, result.error = "failed", f"late-line check: cannot count the day in {exporter.backend}: {exc}"
        return
    finally:
        result.late_check_seconds = time.monotonic() - began
    archived = manifest.units()
    for unit in sorted(set(counts) | set(archived)):
        have, now_ = archived.get(unit, 0), counts.get(unit, 0)
        if now_ > have:
            result.changed_units.append(unit)
            result.late_events += now_ - have
        elif now_ < have:
            result.problems.append(f"{unit}: the backend now has {now_} events, the archive {have} "
                                   "(deleted from the backend; the archive is kept as it is)")
    if result.changed_units:
        log.warning("%s changed in %s after it was archived: %d more events in %d unit(s); archiving it again",
                    manifest.day, exporter.backend, result.late_events, len(result.changed_units))


def _keep(store: ObjectStore, day: date, version: int) -> None:
    """Keep the current manifest as ``manifest.v<version>.json`` before a new version replaces it."""
    key = manifest_key(day, version)
    if store.stat(key) is None:
        data = store.get(manifest_key(day))
        store.put(key, data, sha256_hex(data))


def check_no_foreign(store: ObjectStore, day: date, backend: str) -> None:
    """Refuse a day directory holding objects an export does not write (another route, another tool)."""
    prefix = day_prefix(day)
    foreign = [o.key for o in store.list(prefix) if o.key != prefix + MANIFEST_NAME
               and not EXPORT_OBJECT.match(o.key[len(prefix):])
               and not VERSIONED_MANIFEST.match(o.key[len(prefix):])
               and not SLICE_MANIFEST.match(o.key[len(prefix):])]
    if foreign:
        raise ArchiveConflict(f"{store.describe(prefix)} holds objects an export does not write "
                              f"(e.g. {foreign[0]}): use another --to for {backend}")


def export_units(exporter: Exporter, store: ObjectStore, day: date, units: list[Unit], *, version: int,
                 max_object_bytes: int, level: int, progress: Progress, concurrency: int = 1,
                 ) -> tuple[list[ObjectEntry], int]:
    """Export ``units`` (``concurrency`` at a time, in threads: the work is waiting on the backend and
    on compression, which releases the GIL); ``(entries, objects reused)``."""
    entries: list[ObjectEntry] = []
    reused = 0
    progress.start(f"{exporter.backend} {day}", len(units))
    try:
        if concurrency <= 1:
            for unit in units:
                got, n = export_unit(exporter, store, day, unit, max_object_bytes, level, version)
                entries, reused = entries + got, reused + n
                progress.unit_done(sum(e.events for e in entries))
        else:
            with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="archive") as pool:
                futures = [pool.submit(export_unit, exporter, store, day, unit, max_object_bytes, level, version)
                           for unit in units]
                for future in as_completed(futures):
                    got, n = future.result()
                    entries, reused = entries + got, reused + n
                    progress.unit_done(sum(e.events for e in entries))
    finally:
        progress.finish()
    return entries, reused


def remove_stale(store: ObjectStore, day: date, entries: list[ObjectEntry], version: int,
                 units: set[str] | None = None) -> None:
    """Remove parts of ``version`` (of ``units`` only, when given) that this export did not write."""
    prefix = day_prefix(day)
    written = {prefix + e.key for e in entries}
    for stale in store.list(prefix):
        rel = stale.key[len(prefix):]
        if stale.key in written or not EXPORT_OBJECT.match(rel) or not in_version(rel, version):
            continue
        if units is not None and rel.removeprefix(version_prefix(version)).split("/", 1)[0] not in units:
            continue
        log.info("removing %s: left by an earlier run, not part of this export", stale.key)
        store.delete(stale.key)


def _export_day(exporter: Exporter, store: ObjectStore, day: date, now: datetime, version: int,
                max_object_bytes: int, level: int, progress: Progress, concurrency: int) -> DayResult:
    check_no_foreign(store, day, exporter.backend)
    units = exporter.units(day)
    result = DayResult(day, "archived", version=version)
    entries, result.reused = export_units(exporter, store, day, units, version=version,
                                          max_object_bytes=max_object_bytes, level=level, progress=progress,
                                          concurrency=concurrency)
    remove_stale(store, day, entries, version)
    manifest = build_manifest(day, "export", exporter.source(), entries, created_at=now, version=version)
    problems = write_manifest(store, day, manifest, version)
    if problems:
        return DayResult(day, "failed", error="the archive written does not read back as written",
                         problems=problems, version=version)
    result.verified = True
    return _from_manifest(result, manifest)


def export_unit(exporter: Exporter, store: ObjectStore, day: date, unit: Unit, max_object_bytes: int, level: int,
                version: int) -> tuple[list[ObjectEntry], int]:
    """One unit's parts, uploaded unless already there; ``(entries, objects reused)``."""
    writer = PartWriter(max_object_bytes, level)
    entries: list[ObjectEntry] = []
    reused = 0

    def flush(part: Part | None) -> None:
        nonlocal reused
        if part is None:
            return
        key = export_object_key(day, unit.name, len(entries), version)
        reused += upload_part(store, key, part)
        entries.append(ObjectEntry(
            key=key[len(day_prefix(day)):], unit=unit.name, events=part.events, bytes=len(part.data),
            uncompressed_bytes=part.uncompressed_bytes, sha256=part.sha256, min_ts_ns=part.min_ts_ns,
            max_ts_ns=part.max_ts_ns, query=unit.query))

    for ts, line in exporter.lines(unit, day):
        flush(writer.add(line, ts))
    flush(writer.finish())
    return entries, reused


def _from_manifest(result: DayResult, manifest: Manifest) -> DayResult:
    result.version = manifest.version
    result.events = manifest.events
    result.objects = len(manifest.objects)
    result.bytes = manifest.bytes
    result.uncompressed_bytes = manifest.uncompressed_bytes
    return result
