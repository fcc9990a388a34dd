"""The ``s3`` sink: each batch becomes gzip NDJSON objects, one per UTC (day, hour) of its events.

Objects are named ``date=YYYY-MM-DD/hour=HH/node=<node>/<first ts_ns>-<digest>.ndjson.gz`` where
the digest is taken over the events' ids: a batch sent again (a retry, or a replay after a crash)
writes the same name and overwrites its first copy instead of adding a duplicate. Every upload
carries its SHA-256 (``ChecksumSHA256``). Lines use the archive format of
:mod:`shipper.archive.objects` (``ts_ns``, ``line``, ``id``, ``meta``, and ``record`` when a transform
changed the fields), so ``archive seal``, ``verify`` and ``restore`` read them like an export.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import defaultdict
from typing import Any

from shipper.archive.layout import ingest_object_key
from shipper.archive.objects import encode_line, gzip_bytes, sha256_hex
from shipper.archive.storage.base import LockSettings, ObjectStore
from shipper.archive.storage.url import open_store
from shipper.errors import StorageError
from shipper.event import Event
from shipper.sinks._common.base import Sink
from shipper.sinks._common.calls import send_in_turn
from shipper.sinks._common.outcome import PermanentSinkError, SendOutcome, TransientSinkError
from shipper.sinks.s3.config import S3SinkConfig

log = logging.getLogger("shipper.sinks.s3")

#: JSON keys, the id and typical metadata around the raw line, in bytes.
_LINE_OVERHEAD = 160


def archive_record(event: Event) -> dict[str, Any]:
    """The archived line of an event (see :mod:`shipper.archive.objects`)."""
    rec: dict[str, Any] = {"ts_ns": event.ts_ns, "line": event.raw, "id": event.id, "meta": event.meta}
    if not event.derived:
        rec["record"] = event.record
    return rec


def partition_key(ts_ns: int) -> tuple[str, int]:
    """``(YYYY-MM-DD, hour)`` of a timestamp, UTC."""
    t = time.gmtime(ts_ns // 1_000_000_000)
    return f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}", t.tm_hour


def object_key(node: str, day: str, hour: int, events: list[Event]) -> str:
    """The object name of a partition's events (sorted by time and id): the same events, the same name."""
    digest = hashlib.blake2b(b"\n".join(e.id.encode() for e in events), digest_size=10).hexdigest()
    return ingest_object_key(node, day, hour, events[0].ts_ns, digest)


def encode_object(events: list[Event], level: int = 6) -> bytes:
    return gzip_bytes(b"".join(encode_line(archive_record(e)) for e in events), level)


_Partition = tuple[str, int, list[Event]]


def _partition_events(group: _Partition) -> list[Event]:
    return group[2]


def partition(events: list[Event]) -> list[_Partition]:
    """Events grouped by UTC (day, hour), each group sorted by time then id, groups in time order."""
    groups: dict[tuple[str, int], list[Event]] = defaultdict(list)
    for e in events:
        groups[partition_key(e.ts_ns)].append(e)
    out = []
    for (day, hour), evs in sorted(groups.items()):
        evs.sort(key=lambda e: (e.ts_ns, e.id))
        out.append((day, hour, evs))
    return out


class S3Sink(Sink[S3SinkConfig]):
    """Archives each batch to S3 (or a directory); a batch is accepted once its objects are written."""

    def __init__(self, name: str, config: S3SinkConfig, data_dir: str, *, store: ObjectStore | None = None) -> None:
        super().__init__(name, config, data_dir)
        self._store = store

    async def start(self) -> None:
        if self._store is None:
            cfg = self.config
            lock = LockSettings(cfg.object_lock, cfg.lock_days) if cfg.object_lock and cfg.lock_days else None
            self._store = await asyncio.to_thread(open_store, cfg.url, lock=lock, region=cfg.region,
                                                  endpoint=cfg.endpoint, profile=cfg.profile)

    async def _get_store(self) -> ObjectStore:
        if self._store is None:
            await self.start()
        assert self._store is not None
        return self._store

    async def healthcheck(self) -> None:
        store = await self._get_store()
        try:
            await asyncio.to_thread(store.check)
        except StorageError as exc:
            error = TransientSinkError if exc.transient else PermanentSinkError
            raise error(self.name, str(exc)) from exc

    def event_size(self, event: Event) -> int:
        return len(event.raw) + _LINE_OVERHEAD

    async def send(self, events: list[Event]) -> SendOutcome:
        """One object per (day, hour), in turn: a transient failure retries that object and the later ones."""
        store = await self._get_store()

        async def put(group: _Partition) -> SendOutcome:
            return await self._put_object(store, group)

        return await send_in_turn(partition(events), put, _partition_events, sink=self.name)

    async def _put_object(self, store: ObjectStore, group: _Partition) -> SendOutcome:
        day, hour, evs = group
        key = object_key(self.config.node, day, hour, evs)
        data = encode_object(evs, self.config.compression_level)
        try:
            await asyncio.to_thread(store.put, key, data, sha256_hex(data))
        except StorageError as exc:
            if exc.transient:
                raise TransientSinkError(self.name, str(exc)) from exc
            return SendOutcome(rejected=[(e, f"storage: {exc}") for e in evs], reason=str(exc))
        return SendOutcome.ok(len(data))

    async def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
