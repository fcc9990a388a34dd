"""``archive restore``: replay an archived day into Loki, Elasticsearch or a file, through the sinks.

Archived lines become :class:`~shipper.event.Event` objects again and go through the same sink
classes and the same :class:`~shipper.sinks._common.delivery.Delivery` (batching, retries, dead
letters) as live traffic, so a restore writes exactly what the shipper would have:

* Elasticsearch: ``create`` with the document id (the archived ``id``, or the event's own id), so a
  restore run twice indexes nothing twice. Default index: ``restored-<original index>``.
* Loki: the archived stream labels and structured metadata, plus ``restored="<day>"`` (``--label``
  replaces it). Loki refuses entries more than an hour behind a stream's newest line, so replaying
  into the original streams fails once they moved on: the extra label makes fresh streams. Loki
  also refuses entries older than ``reject_old_samples_max_age``: restore days older than that into
  a tenant whose limits allow it. Objects of one stream are replayed in order, one at a time.
* File: the original lines, via the ``file`` sink (appends: restore into an empty path).

An object whose SHA-256 differs from the manifest is not replayed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

import orjson

from shipper.archive.layout import day_prefix
from shipper.archive.manifest import Manifest, ObjectEntry
from shipper.archive.objects import iter_records, sha256_hex
from shipper.archive.storage.base import ObjectStore
from shipper.errors import JobError
from shipper.event import Event
from shipper.jobs.verify import read_manifest
from shipper.sinks._common.base import Sink
from shipper.sinks._common.config import BatchConfig, SinkConfigBase
from shipper.sinks._common.dead_letter import DeadLetterWriter
from shipper.sinks._common.delivery import Delivery, DeliveryReport
from shipper.sinks.elasticsearch.config import ElasticsearchSinkConfig
from shipper.sinks.elasticsearch.sink import ElasticsearchSink
from shipper.sinks.file.config import FileSinkConfig
from shipper.sinks.file.sink import FileSink
from shipper.sinks.loki.config import LokiSinkConfig
from shipper.sinks.loki.sink import LokiSink

log = logging.getLogger("shipper.jobs")

TargetKind = Literal["loki", "elasticsearch", "file"]
#: Where archived labels of a Loki stream travel in a restored event's metadata.
LABELS_KEY = "_archive_labels"
#: Where the archived location (index, group, stream) travels.
ORIGIN_KEY = "_archive"
_RETRY = {"initial_backoff_secs": 0.2, "max_backoff_secs": 5.0, "max_attempts": 8}
#: Archived lines decoded at a time (an object holds up to 64 MiB of them).
_CHUNK = 10_000
#: A restore replays a whole day's streams and indices through one sink with no pod: the hourly
#: name guards (meant for live, hostile traffic) would fold most of them into the overflow.
_UNGUARDED_LOKI = {"max_label_values": 1_000_000, "max_label_values_per_pod": 1_000_000,
                   "max_streams": 1_000_000, "max_streams_per_pod": 1_000_000}
_UNGUARDED_ES = {"max_indices": 1_000_000, "max_indices_per_pod": 1_000_000}


@dataclass(slots=True)
class RestoreTarget:
    """Where a day goes. ``base`` is the shipper's sink of that kind (auth, TLS, label templates)."""

    kind: TargetKind
    endpoint: str | None = None
    index: str | None = None
    tenant: str | None = None
    labels: dict[str, str] | None = None
    path: str | None = None
    base: LokiSinkConfig | ElasticsearchSinkConfig | None = None


@dataclass(slots=True)
class RestoreResult:
    day: date
    target: str
    objects: int = 0
    events: int = 0
    rejected: int = 0
    seconds: float = 0.0
    dead_letters: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"day": self.day.isoformat(), "target": self.target, "objects": self.objects,
                "events": self.events, "delivered": self.events - self.rejected, "rejected": self.rejected,
                "seconds": round(self.seconds, 3), "dead_letters": self.dead_letters}


def event_for(rec: dict[str, Any], kind: TargetKind) -> Event:
    """The event an archived line stands for, shaped for the target (see the module docstring)."""
    line, ts = rec["line"], int(rec["ts_ns"])
    if "meta" in rec:  # archived at ingest: the event as the shipper had it
        return Event(rec.get("record"), line, ts, dict(rec["meta"] or {}))
    if "labels" in rec and kind == "loki":
        return Event({}, line, ts, {LABELS_KEY: rec["labels"], **(rec.get("metadata") or {})})
    origin = {k: rec[k] for k in ("index", "group", "stream") if k in rec}
    meta: dict[str, Any] = {ORIGIN_KEY: origin} if origin else {}
    if rec.get("id"):
        meta["id"] = rec["id"]
    if "index" in rec and kind == "elasticsearch":
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            doc = None
        if isinstance(doc, dict):
            return Event(doc, line, ts, meta)
    return Event(None, line, ts, meta)


class _Replayer:
    """Builds one sink per shape of stream (Loki) or one for the day, and delivers batches."""

    def __init__(self, target: TargetKind, spec: RestoreTarget, day: date, manifest: Manifest,
                 data_dir: Path) -> None:
        self.kind = target
        self.spec = spec
        self.day = day
        self.manifest = manifest
        self.data_dir = data_dir
        self.deliveries: dict[Any, tuple[Delivery, BatchConfig]] = {}
        self.report = DeliveryReport()
        self._lock = asyncio.Lock()

    def _config(self, key: Any) -> tuple[SinkConfigBase, type[Sink]]:
        spec, base = self.spec, self.spec.base
        common: dict[str, Any] = {"inputs": ["archive"], "healthcheck": False,
                                  "request": {"concurrency": 1, "retry": _RETRY}}
        if self.kind == "file":
            if not spec.path:
                raise JobError("restore --target file needs --path (strftime fields allowed, "
                               "e.g. ./restore/%Y-%m-%d.ndjson)")
            return FileSinkConfig.model_validate({**common, "type": "file", "path": spec.path}), FileSink
        if self.kind == "elasticsearch":
            data = base.model_dump(exclude_unset=True) if isinstance(base, ElasticsearchSinkConfig) else {}
            endpoint = spec.endpoint or data.get("endpoint")
            if not endpoint:
                raise JobError("restore --target elasticsearch needs --endpoint (or an elasticsearch sink in --config)")
            data.update(common, type="elasticsearch", endpoint=endpoint, index=spec.index or self._default_index(base),
                        mode="index", **_UNGUARDED_ES,
                        batch={"max_events": 1000, "max_bytes": 5 * 1048576, "timeout_secs": 1})
            data.pop("template_name", None)
            return ElasticsearchSinkConfig.model_validate(data), ElasticsearchSink
        data = base.model_dump(exclude_unset=True) if isinstance(base, LokiSinkConfig) else {}
        endpoint = spec.endpoint or data.get("endpoint")
        if not endpoint:
            raise JobError("restore --target loki needs --endpoint (or a loki sink in --config)")
        extra = spec.labels if spec.labels is not None else {"restored": self.day.isoformat()}
        if key is None:  # not a Loki archive: the configured label templates
            labels = dict(data.get("labels") or {"service": "{{ service }}"})
            metadata = data.get("structured_metadata")
        else:
            names, metadata = key
            labels = {n: f"{{{{ {LABELS_KEY}.{n} }}}}" for n in names}
            metadata = list(metadata)
        labels.update(extra)
        data.update(common, type="loki", endpoint=endpoint, labels=labels, **_UNGUARDED_LOKI,
                    batch={"max_events": 1000, "max_bytes": 1048576, "timeout_secs": 1})
        if metadata is not None:
            data["structured_metadata"] = metadata
        if spec.tenant:
            data["tenant_id"] = spec.tenant
        return LokiSinkConfig.model_validate(data), LokiSink

    def _default_index(self, base: Any) -> str:
        if self.manifest.backend == "elasticsearch":
            return f"restored-{{{{ {ORIGIN_KEY}.index }}}}"
        pattern = base.index if isinstance(base, ElasticsearchSinkConfig) else "ecvi-logs-%Y.%m.%d"
        return f"restored-{pattern}"

    async def delivery(self, key: Any) -> tuple[Delivery, BatchConfig]:
        """The delivery (and its batch limits) of the sink for ``key``, started on first use."""
        async with self._lock:
            hit = self.deliveries.get(key)
            if hit is None:
                config, cls = self._config(key)
                name = f"restore-{self.kind}-{len(self.deliveries)}"
                sink = cls(name, config, str(self.data_dir))
                await sink.start()
                delivery = Delivery(sink, config.request.retry, DeadLetterWriter(self.data_dir, name))
                hit = self.deliveries[key] = (delivery, config.batch)
            return hit

    async def replay(self, records: list[dict[str, Any]]) -> None:
        """Deliver one object's events (in order)."""
        by_names: dict[Any, list[dict[str, Any]]] = {}
        for rec in records:
            names = None
            if self.kind == "loki" and "labels" in rec:
                # Names starting with "__" are Loki's own (__stream_shard__): it sets them again itself.
                names = tuple(sorted(n for n in rec["labels"] if not n.startswith("__")))
            by_names.setdefault(names, []).append(rec)
        groups: dict[Any, list[Event]] = {}
        for names, recs in by_names.items():
            # One sink per label names, with every metadata name of the lines: a stream's entries
            # must go through one sink, in order (a missing metadata value is simply not sent).
            metadata = tuple(sorted({k for r in recs for k in r.get("metadata") or {}}))
            groups[(names, metadata) if names is not None else None] = [event_for(r, self.kind) for r in recs]
        for key, events in groups.items():
            delivery, batch = await self.delivery(key)
            self.report.add(await delivery.deliver_all(events, batch))

    async def close(self) -> list[str]:
        """Close the sinks; returns the dead-letter files of this restore's sinks that exist."""
        paths = []
        for delivery, _batch in self.deliveries.values():
            await delivery.sink.close()
            if delivery.dead.path.exists():
                paths.append(str(delivery.dead.path))
        return paths


def _lanes(manifest: Manifest, kind: TargetKind) -> list[list[ObjectEntry]]:
    """Objects that must be replayed one after the other, per lane; lanes may run side by side."""
    objects = sorted(manifest.objects, key=lambda o: (o.unit, o.key))
    if kind == "elasticsearch":
        return [[o] for o in objects]
    if kind == "loki" and manifest.route == "export":
        lanes: dict[str, list[ObjectEntry]] = {}
        for o in objects:
            lanes.setdefault(o.unit, []).append(o)
        return list(lanes.values())
    return [sorted(objects, key=lambda o: (o.min_ts_ns, o.key))]


def _load(store: ObjectStore, day: date, entry: ObjectEntry) -> bytes:
    """The object's bytes, refused when they are not what the manifest lists."""
    key = day_prefix(day) + entry.key
    data = store.get(key)
    digest = sha256_hex(data)
    if digest != entry.sha256:
        raise JobError(f"{store.describe(key)}: SHA-256 {digest} does not match the manifest ({entry.sha256}); "
                       "not restored (run `archive verify`)")
    return data


def _chunks(records: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for rec in records:
        chunk.append(rec)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def restore_day(store: ObjectStore, day: date, target: RestoreTarget, *, data_dir: str | Path,
                      concurrency: int = 2) -> RestoreResult:
    """Replay every object of ``day`` into ``target``; dead letters go under ``data_dir``."""
    began = time.monotonic()
    manifest = await asyncio.to_thread(read_manifest, store, day)
    if manifest is None:
        raise JobError(f"{store.describe(day_prefix(day))} has no manifest: seal or archive the day first")
    result = RestoreResult(day, target.kind)
    gate = asyncio.Semaphore(max(1, concurrency))
    replayer = _Replayer(target.kind, target, day, manifest, Path(data_dir))

    async def run_lane(lane: list[ObjectEntry]) -> None:
        async with gate:
            for entry in lane:
                data = await asyncio.to_thread(_load, store, day, entry)
                for records in _chunks(iter_records(data), _CHUNK):
                    await replayer.replay(records)
                    result.events += len(records)
                result.objects += 1

    try:
        await asyncio.gather(*(run_lane(lane) for lane in _lanes(manifest, target.kind)))
    finally:
        result.dead_letters = await replayer.close()
    result.rejected = replayer.report.dead_lettered + replayer.report.dropped
    result.seconds = time.monotonic() - began
    return result
