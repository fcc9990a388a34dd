"""The check before anything leaves a backend: the day's archive verifies and holds what the backend has.

One rule for every delete the project performs or schedules (``retention enforce`` on
Elasticsearch, ``archive gate`` before a backend's own deletion reaches a day): the day has a
manifest, its objects pass the (deep) verify, and for every unit (Loki stream, index, log group)
the archive holds at least as many events as the backend does now. An export must match per unit;
an archive written at ingest (the ``s3`` sink) may hold more (resent batches), never fewer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from shipper.archive.manifest import Manifest
from shipper.archive.storage.base import ObjectStore
from shipper.jobs.verify import verify_day


@dataclass(slots=True)
class Verdict:
    """May ``day`` leave the backend? ``reasons`` says why not (empty when it may)."""

    day: date
    manifest: Manifest | None = None
    reasons: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.manifest is not None and not self.reasons


def verified_archive(store: ObjectStore, day: date, *, deep: bool = True) -> Verdict:
    """The day's current archive, when it verifies (deep: every object downloaded and re-hashed)."""
    report = verify_day(store, day, deep=deep)
    if not report.ok:
        return Verdict(day, None, [str(p) for p in report.problems[:3]] or ["no verified archive"])
    return Verdict(day, report.manifest)


def coverage_problems(manifest: Manifest, backend: str, counts: dict[str, int]) -> list[str]:
    """Why the archive does not hold what the backend has (``counts``: events per unit name)."""
    if manifest.route == "export":
        if manifest.backend != backend:
            return [f"the archive is an export of {manifest.backend}, not of {backend}"]
        archived = manifest.units()
        return [f"the archive holds {archived.get(unit, 0)} events of {unit}, the backend {n}"
                for unit, n in sorted(counts.items()) if archived.get(unit, 0) < n]
    total = sum(counts.values())
    if manifest.events < total:
        return [f"the archive holds {manifest.events} events of the day, the backend {total}"]
    return []


def may_delete(store: ObjectStore, day: date, backend: str, counts: dict[str, int], *, deep: bool = True) -> Verdict:
    """The whole check for one day whose backend ``counts`` (per unit) are about to be deleted."""
    verdict = verified_archive(store, day, deep=deep)
    if verdict.manifest is not None:
        verdict.reasons += coverage_problems(verdict.manifest, backend, counts)
    return verdict
