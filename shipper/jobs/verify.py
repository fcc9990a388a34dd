"""Check an archived day: the manifest, every object's size, SHA-256, count and times, and the backend.

A quick check reads only object metadata (size, and the SHA-256 S3 keeps with each object); the
deep check downloads every object and reads every line. Both name the object that fails.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from shipper.archive.days import day_bounds_ns
from shipper.archive.layout import VERSIONED_MANIFEST, day_prefix, manifest_key
from shipper.archive.manifest import Manifest, parse_manifest
from shipper.archive.objects import scan_object, sha256_hex
from shipper.archive.storage.base import ObjectStore
from shipper.errors import JobError, ManifestError, ObjectMissing
from shipper.jobs.exporters.base import Exporter

log = logging.getLogger("shipper.jobs")


@dataclass(slots=True)
class Problem:
    """What is wrong, and with which object (its key under the archive root)."""

    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


@dataclass(slots=True)
class VerifyReport:
    day: date
    url: str
    deep: bool
    manifest: Manifest | None = None
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    objects_checked: int = 0
    events_checked: int = 0
    backend_counts: dict[str, int] | None = None

    @property
    def ok(self) -> bool:
        return self.manifest is not None and not self.problems

    def to_json(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "day": self.day.isoformat(), "archive": self.url, "ok": self.ok, "deep": self.deep,
            "route": m.route if m else None, "backend": m.backend if m else None,
            "events": m.events if m else None, "objects": len(m.objects) if m else None,
            "objects_checked": self.objects_checked, "events_checked": self.events_checked,
            "backend_counts": self.backend_counts,
            "problems": [str(p) for p in self.problems], "warnings": [str(w) for w in self.warnings],
        }


def read_manifest(store: ObjectStore, day: date, version: int | None = None) -> Manifest | None:
    """The day's manifest (or kept ``version``), None when there is none; raises ManifestError when damaged."""
    key = manifest_key(day, version)
    try:
        data = store.get(key)
    except ObjectMissing:
        return None
    return parse_manifest(data, store.describe(key))


def kept_versions(store: ObjectStore, day: date) -> list[int]:
    """Versions of the day kept as ``manifest.v<N>.json`` (see :mod:`shipper.archive.layout`), ascending."""
    prefix = day_prefix(day)
    found = (VERSIONED_MANIFEST.match(o.key[len(prefix):]) for o in store.list(prefix))
    return sorted(int(m.group(1)) for m in found if m)


def verify_day(store: ObjectStore, day: date, *, deep: bool = True, exporter: Exporter | None = None,
               version: int | None = None) -> VerifyReport:
    """Check the archive of ``day`` (its current manifest, or a kept ``version``); with ``exporter``,
    also against the backend's own counts."""
    report = VerifyReport(day, store.url, deep)
    mkey = manifest_key(day, version)
    try:
        manifest = read_manifest(store, day, version)
    except ManifestError as exc:
        report.problems += [Problem(mkey, p) for p in exc.problems]
        return report
    if manifest is None:
        report.problems.append(Problem(mkey, "missing: the day was never archived or sealed, or an "
                                             "archive run did not finish"))
        return report
    report.manifest = manifest
    if manifest.day != day:
        report.problems.append(Problem(mkey, f"describes {manifest.day}, not {day}"))
    if version is not None and manifest.version != version:
        report.problems.append(Problem(mkey, f"is version {manifest.version}, not {version}"))
    prefix = day_prefix(day)
    for entry in manifest.objects:
        key = prefix + entry.key
        problems = _check_deep(store, key, entry, day) if deep else _check_quick(store, key, entry)
        report.problems += problems
        report.objects_checked += 1
        if deep and not problems:
            report.events_checked += entry.events
    listed = {prefix + o.key for o in manifest.objects} | {mkey, manifest_key(day)}
    for kept in kept_versions(store, day):  # other versions' objects are theirs, not strays
        listed.add(manifest_key(day, kept))
        other = _kept_manifest(store, day, kept)
        listed |= {prefix + o.key for o in other.objects} if other is not None else set()
    for info in store.list(prefix):
        if info.key not in listed:
            report.warnings.append(Problem(info.key, "not in the manifest (written after it: seal the day again)"))
    if exporter is not None:
        _check_backend(report, manifest, exporter, day)
    return report


def write_manifest(store: ObjectStore, day: date, manifest: Manifest, version: int = 1) -> list[str]:
    """Store the day's manifest, then read the day back (quick check); the problems found, if any.

    From version 2 on the versioned copy is written first, so ``manifest.json`` never names a
    version that is not kept.
    """
    data = manifest.to_json()
    if version > 1:
        store.put(manifest_key(day, version), data, sha256_hex(data))
    store.put(manifest_key(day), data, sha256_hex(data))
    check = verify_day(store, day, deep=False)
    return [] if check.ok else [str(p) for p in check.problems]


def _kept_manifest(store: ObjectStore, day: date, version: int) -> Manifest | None:
    try:
        return read_manifest(store, day, version)
    except ManifestError:
        return None  # reported when that version is verified


def _check_quick(store: ObjectStore, key: str, entry: Any) -> list[Problem]:
    info = store.stat(key)
    if info is None:
        return [Problem(key, "missing")]
    out = []
    if info.size != entry.bytes:
        out.append(Problem(key, f"size is {info.size} bytes, the manifest says {entry.bytes}"))
    if info.sha256 is not None and info.sha256 != entry.sha256:
        out.append(Problem(key, f"SHA-256 {info.sha256} does not match the manifest ({entry.sha256})"))
    return out


def _check_deep(store: ObjectStore, key: str, entry: Any, day: date) -> list[Problem]:
    try:
        data = store.get(key)
    except ObjectMissing:
        return [Problem(key, "missing")]
    out = []
    if len(data) != entry.bytes:
        out.append(Problem(key, f"size is {len(data)} bytes, the manifest says {entry.bytes}"))
    digest = sha256_hex(data)
    if digest != entry.sha256:
        out.append(Problem(key, f"SHA-256 {digest} does not match the manifest ({entry.sha256})"))
    scan = scan_object(data)
    if scan.bad_lines:
        out.append(Problem(key, f"{scan.bad_lines} damaged line(s); first: {scan.first_error}"))
    if scan.events != entry.events:
        out.append(Problem(key, f"holds {scan.events} events, the manifest says {entry.events}"))
    if scan.uncompressed_bytes != entry.uncompressed_bytes and not scan.bad_lines:
        out.append(Problem(key, f"holds {scan.uncompressed_bytes} bytes uncompressed, the manifest says "
                                f"{entry.uncompressed_bytes}"))
    if scan.events and (scan.min_ts_ns, scan.max_ts_ns) != (entry.min_ts_ns, entry.max_ts_ns):
        out.append(Problem(key, "first/last timestamps differ from the manifest"))
    start, end = day_bounds_ns(day)
    if scan.min_ts_ns is not None and scan.max_ts_ns is not None and not (
            start <= scan.min_ts_ns and scan.max_ts_ns < end):
        out.append(Problem(key, f"holds events outside {day}"))
    return out


def _check_backend(report: VerifyReport, manifest: Manifest, exporter: Exporter, day: date) -> None:
    try:
        counts = exporter.counts(day)
    except JobError as exc:
        report.problems.append(Problem(exporter.backend, f"cannot count the day in the backend: {exc}"))
        return
    report.backend_counts = counts
    if manifest.route == "export" and manifest.backend == exporter.backend:
        archived = manifest.units()
        for unit in sorted(set(counts) | set(archived)):
            have, want = archived.get(unit, 0), counts.get(unit, 0)
            if have != want:
                report.problems.append(Problem(f"{day_prefix(day)}{unit}", f"the backend has {want} events, "
                                                                          f"the archive {have}"))
        return
    # Archived at ingest: duplicates from resent batches are possible, missing events are not.
    total = sum(counts.values())
    if total > manifest.events:
        report.problems.append(Problem(manifest_key(day), f"the backend has {total} events of the day, "
                                                          f"the archive only {manifest.events}"))
    elif total < manifest.events:
        report.warnings.append(Problem(manifest_key(day), f"the archive has {manifest.events} events, the "
                                                          f"backend {total} (resent batches, or filtered sinks)"))
