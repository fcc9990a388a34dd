"""``archive drill``: prove a day can come back, end to end, without touching live data.

A drill deep-verifies the day's archive (every object re-hashed and counted against the manifest,
and against the live backend when one is given), restores the day into a scratch target through
the same code as ``archive restore``, then reads the scratch target back:

* file (default): every restored line, compared with the archived lines as a multiset (count and
  an order-independent SHA-256 sum), in a temporary directory removed afterwards;
* Elasticsearch: a scratch index ``ecvi-drill-<nonce>``, its document count after a refresh
  (document ids make a restore idempotent, so the count is exact), deleted afterwards;
* Loki: streams labelled ``drill="<nonce>"``; Loki serves lines of an old day from its store only
  once the ingesters flushed them (``max_chunk_age``, 2 h by default), so the drill checks that every
  line was accepted (none refused), not a read-back count.

The result is one line (or JSON) and the exit code; a monthly CronJob makes restores a habit.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from shipper.archive.layout import day_prefix
from shipper.archive.objects import iter_records
from shipper.archive.storage.base import ObjectStore
from shipper.jobs.exporters.base import Exporter
from shipper.jobs.restore import RestoreTarget, restore_day
from shipper.jobs.verify import verify_day

_MOD = 1 << 256


def multiset_digest(lines: Iterable[str]) -> tuple[int, str]:
    """``(count, digest)`` of lines as a multiset: the sum of their SHA-256 values, order-free."""
    count, total = 0, 0
    for line in lines:
        count += 1
        total = (total + int.from_bytes(hashlib.sha256(line.encode("utf-8", "surrogatepass")).digest(), "big")) % _MOD
    return count, f"{total:064x}"


@dataclass(slots=True)
class DrillResult:
    day: date
    target: str
    archived: int = 0
    restored: int = 0
    refused: int = 0
    read_back: int | None = None
    backend: int | None = None
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def line(self) -> str:
        head = f"{self.day} drill {'OK' if self.ok else 'FAILED'}: {self.archived} archived"
        head += f", {self.restored - self.refused} restored into {self.target}"
        if self.read_back is not None:
            head += f", {self.read_back} read back"
        if self.backend is not None:
            head += f", backend {self.backend}"
        head += f" ({self.seconds:.1f}s)"
        return head + "".join(f"; {p}" for p in self.problems)

    def to_json(self) -> dict[str, Any]:
        return {"day": self.day.isoformat(), "target": self.target, "ok": self.ok, "archived": self.archived,
                "restored": self.restored, "refused": self.refused, "read_back": self.read_back,
                "backend": self.backend, "seconds": round(self.seconds, 3), "problems": self.problems}


def _archived_lines(store: ObjectStore, day: date, keys: list[str]) -> Iterable[str]:
    for key in keys:
        for rec in iter_records(store.get(day_prefix(day) + key)):
            yield str(rec["line"])


def _file_lines(root: Path) -> Iterable[str]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and "dead_letter" not in path.parts:
            yield from path.read_text(encoding="utf-8", errors="surrogateescape").splitlines()


async def drill_day(store: ObjectStore, day: date, target: RestoreTarget, *, exporter: Exporter | None = None,
                    read_back: Callable[[], int] | None = None, keep: bool = False) -> DrillResult:
    """Run the drill (see the module docstring); ``read_back`` counts the scratch target afterwards."""
    began = time.monotonic()
    result = DrillResult(day, target.kind)
    report = verify_day(store, day, deep=True, exporter=exporter)
    result.problems += [str(p) for p in report.problems]
    if report.backend_counts is not None:
        result.backend = sum(report.backend_counts.values())
    manifest = report.manifest
    if manifest is None or not report.ok:
        result.seconds = time.monotonic() - began
        return result
    result.archived = manifest.events
    scratch = Path(tempfile.mkdtemp(prefix="ecvi-drill-"))
    try:
        if target.kind == "file":
            target.path = str(scratch / "out" / "%Y-%m-%d.ndjson")
            result.target = "file"
        restored = await restore_day(store, day, target, data_dir=scratch / "data")
        result.restored, result.refused = restored.events, restored.rejected
        if restored.rejected:
            result.problems.append(f"{restored.rejected} event(s) refused by the target (see {scratch / 'data'})")
            keep = True
        if target.kind == "file":
            want = multiset_digest(_archived_lines(store, day, [o.key for o in manifest.objects]))
            got = multiset_digest(_file_lines(scratch / "out"))
            result.read_back = got[0]
            if got != want:
                result.problems.append(f"the restored lines differ from the archive ({got[0]} lines read back, "
                                       f"{want[0]} archived, or different content)")
        elif read_back is not None:
            result.read_back = read_back()
            if result.read_back != manifest.events:
                result.problems.append(f"the scratch target holds {result.read_back} events, the archive "
                                       f"{manifest.events}")
        if result.restored != manifest.events:
            result.problems.append(f"{result.restored} events restored, the manifest lists {manifest.events}")
    finally:
        if not keep:
            shutil.rmtree(scratch, ignore_errors=True)
    result.seconds = time.monotonic() - began
    return result
