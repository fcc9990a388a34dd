"""The day manifest: what an archive day holds, written last so its presence means "complete".

Where it lives and how objects are named: :mod:`shipper.archive.layout`. Object keys in a manifest
are relative to the day's directory. ``version`` counts the exports of a day that changed after it
was archived (late lines); earlier versions are kept beside it.
"""

from __future__ import annotations

import builtins
from datetime import UTC, date, datetime
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shipper import __version__
from shipper.archive.days import day_bounds_ns
from shipper.archive.layout import MANIFEST_NAME
from shipper.errors import ManifestError


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ObjectEntry(_Model):
    """One object of the day."""

    key: str = Field(..., description="Path relative to the day's directory.")
    unit: str = Field(..., description="What it holds: a stream, index, log group, or hour/node partition.")
    events: int = Field(..., ge=0)
    bytes: int = Field(..., ge=0, description="Stored (gzip) size.")
    uncompressed_bytes: int = Field(..., ge=0)
    sha256: str = Field(..., pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the stored bytes.")
    min_ts_ns: int
    max_ts_ns: int
    query: dict[str, Any] | None = Field(None, description="The exact backend query the lines came from.")


class Tool(_Model):
    name: str = "ecvi-logs"
    version: str = __version__


class Manifest(_Model):
    """A day's manifest. Totals are the sums over ``objects``."""

    format: Literal["ecvi-logs-archive/1"] = "ecvi-logs-archive/1"
    day: date
    route: Literal["export", "ingest"]
    source: dict[str, Any] = Field(..., description="backend, endpoint, tenant, selector, ...")
    tool: Tool = Field(default_factory=Tool)
    created_at: datetime
    version: int = Field(1, ge=1, description="1, then one more each time late lines made the day export again.")
    events: int = Field(..., ge=0)
    bytes: int = Field(..., ge=0)
    uncompressed_bytes: int = Field(..., ge=0)
    min_ts_ns: int | None
    max_ts_ns: int | None
    objects: list[ObjectEntry]

    @property
    def backend(self) -> str:
        return str(self.source.get("backend", ""))

    def problems(self) -> list[str]:
        """Inconsistencies a schema cannot see: totals, key safety, duplicates, times outside the day."""
        out: list[str] = []
        start, end = day_bounds_ns(self.day)
        seen: set[str] = set()
        for o in self.objects:
            if o.key in seen:
                out.append(f"object {o.key} is listed twice")
            seen.add(o.key)
            if not _safe_key(o.key):
                out.append(f"object key {o.key!r} must be a relative path without '..'")
            if o.events and o.min_ts_ns > o.max_ts_ns:
                out.append(f"object {o.key}: min_ts_ns is after max_ts_ns")
            if o.events and not (start <= o.min_ts_ns and o.max_ts_ns < end):
                out.append(f"object {o.key}: timestamps outside {self.day}")
        sums = {
            "events": sum(o.events for o in self.objects),
            "bytes": sum(o.bytes for o in self.objects),
            "uncompressed_bytes": sum(o.uncompressed_bytes for o in self.objects),
        }
        for name, total in sums.items():
            if getattr(self, name) != total:
                out.append(f"{name} is {getattr(self, name)} but the objects add up to {total}")
        listed = [o for o in self.objects if o.events]
        lo = min((o.min_ts_ns for o in listed), default=None)
        hi = max((o.max_ts_ns for o in listed), default=None)
        if (self.min_ts_ns, self.max_ts_ns) != (lo, hi):
            out.append("min_ts_ns/max_ts_ns do not match the objects")
        return out

    def to_json(self) -> builtins.bytes:
        return orjson.dumps(self.model_dump(mode="json"), option=orjson.OPT_INDENT_2) + b"\n"

    def units(self) -> dict[str, int]:
        """Events per unit."""
        counts: dict[str, int] = {}
        for o in self.objects:
            counts[o.unit] = counts.get(o.unit, 0) + o.events
        return counts


def _safe_key(key: str) -> bool:
    return bool(key) and not key.startswith("/") and ".." not in key.split("/") and "\\" not in key


def build_manifest(day: date, route: Literal["export", "ingest"], source: dict[str, Any],
                   objects: list[ObjectEntry], created_at: datetime | None = None, version: int = 1) -> Manifest:
    """A manifest over ``objects`` (sorted by key), with its totals."""
    objects = sorted(objects, key=lambda o: o.key)
    listed = [o for o in objects if o.events]
    return Manifest(
        day=day, route=route, source=source,
        created_at=created_at or datetime.now(UTC), version=version,
        events=sum(o.events for o in objects),
        bytes=sum(o.bytes for o in objects),
        uncompressed_bytes=sum(o.uncompressed_bytes for o in objects),
        min_ts_ns=min((o.min_ts_ns for o in listed), default=None),
        max_ts_ns=max((o.max_ts_ns for o in listed), default=None),
        objects=objects,
    )


def parse_manifest(data: bytes, key: str = MANIFEST_NAME) -> Manifest:
    """Parse and validate a manifest; raises :class:`ManifestError` listing every problem."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ManifestError(key, [f"not JSON: {exc}"]) from None
    try:
        manifest = Manifest.model_validate(doc)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()]
        raise ManifestError(key, problems) from None
    problems = manifest.problems()
    if problems:
        raise ManifestError(key, problems)
    return manifest
