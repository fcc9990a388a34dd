"""Where things live under an archive root (``s3://bucket/prefix`` or ``file:///dir``)::

    date=2025-01-31/manifest.json                                 the current manifest
    date=2025-01-31/manifest.v1.json                              a kept version (late lines)
    date=2025-01-31/<unit>/part-00000.ndjson.gz                   archive run (unit: stream=…, index=…, group=…)
    date=2025-01-31/v2/<unit>/part-00000.ndjson.gz                version 2 of an export
    date=2025-01-31/slices/0001-of-0004.json                      one worker's share, before the merge
    date=2025-01-31/hour=13/node=<node>/<first ts>-<digest>.ndjson.gz   the s3 sink, sealed by archive seal

A day archived again because late lines reached the backend gets a new version: its objects under
``v<N>/``, its manifest as ``manifest.v<N>.json`` and as ``manifest.json``. Earlier versions stay
as they were, each verifiable on its own (version 1 is kept as ``manifest.v1.json`` before version
2 replaces ``manifest.json``).
"""

from __future__ import annotations

import re
from datetime import date

from shipper.archive.objects import OBJECT_SUFFIX

MANIFEST_NAME = "manifest.json"
#: Keys relative to the day's directory that belong to some manifest version, not to an export's objects.
VERSIONED_MANIFEST = re.compile(r"^manifest\.v([1-9][0-9]*)\.json$")
#: An export's object, relative to the day's directory.
EXPORT_OBJECT = re.compile(r"^(v[1-9][0-9]*/)?[^/]+/part-\d{5}" + re.escape(OBJECT_SUFFIX) + "$")
#: A slice's manifest (one worker's share of a day), relative to the day's directory.
SLICE_MANIFEST = re.compile(r"^slices/(\d{4})-of-(\d{4})\.json$")
_VERSION_DIR = re.compile(r"^v[1-9][0-9]*/")


def day_prefix(day: date) -> str:
    """The day's directory under the archive root, with a trailing slash."""
    return f"date={day.isoformat()}/"


def manifest_key(day: date, version: int | None = None) -> str:
    """The day's current manifest, or the kept copy of one ``version``."""
    return day_prefix(day) + (MANIFEST_NAME if version is None else f"manifest.v{version}.json")


def version_prefix(version: int) -> str:
    """Where a version's objects live, relative to the day's directory (version 1: the directory itself)."""
    return "" if version == 1 else f"v{version}/"


def in_version(rel: str, version: int) -> bool:
    """Whether an object key (relative to the day) belongs to ``version`` of an export."""
    return rel.startswith(version_prefix(version)) if version > 1 else not _VERSION_DIR.match(rel)


def export_object_key(day: date, unit: str, part: int, version: int = 1) -> str:
    """Part ``part`` of a unit of an export: deterministic, so a re-run finds what it uploaded."""
    return f"{day_prefix(day)}{version_prefix(version)}{unit}/part-{part:05d}{OBJECT_SUFFIX}"


def slice_manifest_key(day: date, index: int, slices: int) -> str:
    """Where worker ``index`` of ``slices`` lists the objects it exported (merged into the manifest)."""
    return f"{day_prefix(day)}slices/{index:04d}-of-{slices:04d}.json"


def ingest_object_key(node: str, day: date | str, hour: int, first_ts_ns: int, digest: str) -> str:
    """An object the ``s3`` sink writes: the partition, the first event's time and a digest of its ids."""
    day_text = day.isoformat() if isinstance(day, date) else day
    return f"date={day_text}/hour={hour:02d}/node={node}/{first_ts_ns:019d}-{digest}{OBJECT_SUFFIX}"
