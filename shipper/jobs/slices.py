"""A day's export split across workers: each takes its units by index, the last one merges.

For days too big for one process in a night: a Kubernetes Indexed Job (``completionMode: Indexed``,
N completions) runs N pods of ``archive run --slices N``; each reads its index from
``JOB_COMPLETION_INDEX`` and exports the units (Loki streams, indices, log groups) whose name
hashes to it, so every worker computes the same split with no coordinator. A worker writes its
objects (the usual keys) and then ``slices/<i>-of-<N>.json``, a manifest of its share, read back.
Whoever finds all N slice manifests present and verifying merges them into the day's manifest,
so the day counts as archived only when every slice did; merging twice writes the same thing.

Days already archived are not sliced: worker 0 runs the usual late-line check on them.
"""

from __future__ import annotations

import hashlib
import time
from datetime import date, datetime

from shipper.archive.days import is_over
from shipper.archive.layout import day_prefix, slice_manifest_key
from shipper.archive.manifest import Manifest, build_manifest, parse_manifest
from shipper.archive.objects import sha256_hex
from shipper.archive.storage.base import ObjectStore
from shipper.errors import JobError, ManifestError, ObjectMissing
from shipper.jobs.archive import (
    DayResult,
    NoProgress,
    Progress,
    check_no_foreign,
    export_units,
    remove_stale,
)
from shipper.jobs.exporters.base import Exporter
from shipper.jobs.verify import read_manifest, verify_day, write_manifest


def slice_of(unit: str, slices: int) -> int:
    """The worker a unit belongs to: a hash of its name, the same in every worker."""
    return int.from_bytes(hashlib.sha256(unit.encode()).digest()[:8], "big") % slices


def export_slice(exporter: Exporter, store: ObjectStore, day: date, *, index: int, slices: int, now: datetime,
                 max_object_bytes: int, level: int = 6, concurrency: int = 1,
                 progress: Progress | None = None) -> DayResult:
    """Export worker ``index``'s share of ``day``, then merge the day if every slice is there."""
    if not 0 <= index < slices:
        raise ValueError(f"slice index {index} is not in 0..{slices - 1}")
    began = time.monotonic()
    try:
        if not is_over(day, now):
            raise JobError(f"{day} is not over yet (UTC): archive a day once it has ended")
        if read_manifest(store, day) is not None:
            result = DayResult(day, "skipped", verified=verify_day(store, day, deep=False).ok)
        else:
            check_no_foreign(store, day, exporter.backend)
            units = [u for u in exporter.units(day) if slice_of(u.name, slices) == index]
            entries, reused = export_units(exporter, store, day, units, version=1, max_object_bytes=max_object_bytes,
                                           level=level, progress=progress or NoProgress(), concurrency=concurrency)
            remove_stale(store, day, entries, 1, units={u.name for u in units})
            source = {**exporter.source(), "slice": f"{index}/{slices}"}
            body = build_manifest(day, "export", source, entries, created_at=now).to_json()
            store.put(slice_manifest_key(day, index, slices), body, sha256_hex(body))
            result = merge_slices(store, day, slices, now=now)
            result.reused = reused
            if result.status == "pending":
                result.events = sum(e.events for e in entries)
                result.objects = len(entries)
    except JobError as exc:
        result = DayResult(day, "failed", error=str(exc))
    result.seconds = time.monotonic() - began
    return result


def merge_slices(store: ObjectStore, day: date, slices: int, *, now: datetime) -> DayResult:
    """Write the day's manifest from its N slice manifests once all are there and their objects check.

    Status ``pending`` while a slice is missing (its worker has not finished), ``archived`` after.
    """
    if read_manifest(store, day) is not None:
        return DayResult(day, "skipped", verified=verify_day(store, day, deep=False).ok)
    parts: list[Manifest] = []
    missing = []
    for i in range(slices):
        key = slice_manifest_key(day, i, slices)
        try:
            parts.append(parse_manifest(store.get(key), store.describe(key)))
        except ObjectMissing:
            missing.append(i)
    if missing:
        return DayResult(day, "pending", error=f"waiting for slice(s) {', '.join(map(str, missing))} of {slices}")
    owner: dict[str, int] = {}
    for i, part in enumerate(parts):
        for unit in {o.unit for o in part.objects}:
            if owner.setdefault(unit, i) != i:
                raise ManifestError(store.describe(day_prefix(day) + "slices/"),
                                    [f"slices {owner[unit]} and {i} both exported {unit}"])
    entries = [o for part in parts for o in part.objects]
    for entry in entries:  # every slice's objects are there, as listed
        info = store.stat(day_prefix(day) + entry.key)
        if info is None or info.size != entry.bytes or (info.sha256 is not None and info.sha256 != entry.sha256):
            raise JobError(f"{store.describe(day_prefix(day) + entry.key)} is not what its slice lists")
    source = {k: v for k, v in parts[0].source.items() if k != "slice"} | {"slices": slices}
    manifest = build_manifest(day, "export", source, entries, created_at=now)
    problems = write_manifest(store, day, manifest)
    if problems:
        return DayResult(day, "failed", error="the merged manifest does not read back as written",
                         problems=problems)
    for i in range(slices):  # merged: the slice manifests have served
        store.delete(slice_manifest_key(day, i, slices))
    return DayResult(day, "archived", events=manifest.events, objects=len(entries), bytes=manifest.bytes,
                     uncompressed_bytes=manifest.uncompressed_bytes, verified=True, version=1)
