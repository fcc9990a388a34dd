"""``archive seal``: write the manifest of a day the ``s3`` sink archived at ingest.

The sink writes ``date=D/hour=HH/node=N/<name>.ndjson.gz`` objects as events arrive; sealing reads
every one of them back (count, SHA-256, first and last timestamp), refuses damaged ones, and
writes ``date=D/manifest.json`` listing them. Sealing again after late objects arrived writes a
manifest that includes them; a day whose manifest already lists exactly what is there is skipped.
"""

from __future__ import annotations

import time
from datetime import date, datetime
from typing import Any

from shipper.archive.days import day_bounds_ns, is_over
from shipper.archive.layout import day_prefix, manifest_key
from shipper.archive.manifest import ObjectEntry, build_manifest
from shipper.archive.objects import OBJECT_SUFFIX, scan_object, sha256_hex
from shipper.archive.storage.base import ObjectStore
from shipper.errors import ArchiveConflict, JobError
from shipper.jobs.archive import DayResult
from shipper.jobs.verify import read_manifest, write_manifest

INGEST_SOURCE: dict[str, Any] = {"backend": "ingest", "writer": "s3 sink"}


def seal_day(store: ObjectStore, day: date, *, now: datetime, force: bool = False) -> DayResult:
    """Seal one day; failures are returned, not raised."""
    began = time.monotonic()
    try:
        result = _seal_day(store, day, now, force)
    except JobError as exc:
        result = DayResult(day, "failed", error=str(exc))
    result.seconds = time.monotonic() - began
    return result


def _seal_day(store: ObjectStore, day: date, now: datetime, force: bool) -> DayResult:
    if not is_over(day, now) and not force:
        raise JobError(f"{day} is not over yet (UTC): seal a day once its shippers have written it")
    prefix = day_prefix(day)
    objects = [o for o in store.list(prefix) if o.key.endswith(OBJECT_SUFFIX)]
    existing = read_manifest(store, day)
    if existing is not None:
        if existing.route != "ingest":
            raise ArchiveConflict(f"{store.describe(manifest_key(day))} is an export of {existing.backend}, "
                                  "not an archive written at ingest: nothing to seal")
        listed = {prefix + o.key: o.bytes for o in existing.objects}
        present = {o.key: o.size for o in objects}
        if listed == present and not force:
            result = DayResult(day, "skipped", events=existing.events, objects=len(existing.objects),
                               bytes=existing.bytes, uncompressed_bytes=existing.uncompressed_bytes)
            return result
        gone = sorted(set(listed) - set(present))
        if gone and not force:
            raise JobError(f"objects listed in the manifest are gone (e.g. {gone[0]}): refusing to seal "
                           "over them (run `archive verify`; --force seals what is there)")
    start, end = day_bounds_ns(day)
    entries: list[ObjectEntry] = []
    for info in objects:
        data = store.get(info.key)
        scan = scan_object(data)
        if scan.bad_lines:
            raise JobError(f"{store.describe(info.key)}: {scan.bad_lines} damaged line(s); first: {scan.first_error}")
        if scan.events and not (start <= (scan.min_ts_ns or 0) and (scan.max_ts_ns or 0) < end):
            raise JobError(f"{store.describe(info.key)} holds events outside {day}")
        rel = info.key[len(prefix):]
        entries.append(ObjectEntry(
            key=rel, unit=rel.rsplit("/", 1)[0] if "/" in rel else "", events=scan.events, bytes=len(data),
            uncompressed_bytes=scan.uncompressed_bytes, sha256=sha256_hex(data),
            min_ts_ns=scan.min_ts_ns if scan.min_ts_ns is not None else start,
            max_ts_ns=scan.max_ts_ns if scan.max_ts_ns is not None else start))
    manifest = build_manifest(day, "ingest", INGEST_SOURCE, entries, created_at=now)
    problems = write_manifest(store, day, manifest)
    if problems:
        return DayResult(day, "failed", error="the manifest written does not read back as written",
                         problems=problems)
    return DayResult(day, "sealed", events=manifest.events, objects=len(entries), bytes=manifest.bytes,
                     uncompressed_bytes=manifest.uncompressed_bytes)
