"""The one event model that flows from sources through transforms and buffers to sinks."""

from __future__ import annotations

import hashlib
from typing import Any

import msgpack
import orjson


class Event:
    """One log event.

    ``record`` holds the log's fields (the parsed JSON object, or ``{"message": line}`` for text),
    ``raw`` the original payload line as it was written, ``ts_ns`` the event time in nanoseconds
    since the epoch (UTC), and ``meta`` where it came from: ``source`` (component name), ``file``
    and ``offset`` or ``tag``, ``kubernetes`` (namespace/pod/container/container_id), ``id``
    (a stable id used for deduplication downstream), and flags such as ``truncated``.

    ``derived`` is True while ``record`` is exactly what :func:`record_from_payload` makes of
    ``raw``: the buffer then stores only ``raw``, and the record is parsed again only if a sink
    asks for it (a sink that writes the raw line never pays for parsing).
    """

    __slots__ = ("_record", "derived", "meta", "raw", "ts_ns")

    def __init__(
        self,
        record: dict[str, Any] | None,
        raw: str,
        ts_ns: int,
        meta: dict[str, Any] | None = None,
        derived: bool = False,
    ) -> None:
        self._record = record
        self.raw = raw
        self.ts_ns = ts_ns
        self.meta = {} if meta is None else meta
        self.derived = derived or record is None

    @property
    def record(self) -> dict[str, Any]:
        if self._record is None:
            self._record = record_from_payload(self.raw)
        return self._record

    @record.setter
    def record(self, value: dict[str, Any]) -> None:
        self._record = value
        self.derived = False

    def __repr__(self) -> str:
        return f"Event(raw={self.raw[:80]!r}, ts_ns={self.ts_ns}, meta={self.meta!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Event):
            return NotImplemented
        return (self.record, self.raw, self.ts_ns, self.meta) == (other.record, other.raw, other.ts_ns, other.meta)

    __hash__ = None  # type: ignore[assignment]

    @property
    def id(self) -> str:
        """A deterministic id: the source's own (file + offset) or a hash of time and line."""
        eid = self.meta.get("id")
        if eid:
            return str(eid)
        h = hashlib.blake2b(digest_size=16)
        h.update(str(self.ts_ns).encode())
        h.update(self.raw.encode("utf-8", "surrogatepass"))
        return h.hexdigest()

    def get(self, path: str, default: Any = None) -> Any:
        """Look up a dotted path in the record, then in ``meta`` (``kubernetes.pod_name``)."""
        return lookup_path(self.record, self.meta, tuple(path.split(".")), default)


# Metadata the shipper derives itself (the kubelet's log path, later the Kubernetes API) is
# authoritative: a record's own ``kubernetes`` object must not move a line into another tenant's
# stream, index or group. Under these roots a path is looked up in ``meta`` alone when it is there.
AUTHORITATIVE_ROOTS = frozenset({"kubernetes"})


def lookup_path(record: dict[str, Any], meta: dict[str, Any], parts: tuple[str, ...], missing: Any = None) -> Any:
    """The value at a pre-split dotted path, in the record first, then in ``meta``; ``missing`` if absent.

    Paths under :data:`AUTHORITATIVE_ROOTS` read ``meta`` alone when the shipper derived that root.
    """
    roots = (meta,) if parts[0] in AUTHORITATIVE_ROOTS and parts[0] in meta else (record, meta)
    for root in roots:
        cur: Any = root
        for part in parts:
            if isinstance(cur, dict) and part in cur:
                cur = cur[part]
            else:
                break
        else:
            return cur
    return missing


def record_from_payload(payload: str) -> dict[str, Any]:
    """A JSON object payload becomes its fields; anything else becomes ``{"message": payload}``."""
    if payload[:1] == "{":
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return {"message": payload}
        if isinstance(obj, dict):
            return obj
    return {"message": payload}


def pack_events(events: list[Event]) -> bytes:
    """Serialise a batch of events for the disk buffer (a derived record is not stored)."""
    return msgpack.packb(
        [(None if e.derived else e._record, e.raw, e.ts_ns, e.meta) for e in events],
        use_bin_type=True, default=str,
    )


def unpack_events(data: bytes) -> list[Event]:
    """Inverse of :func:`pack_events`."""
    return [
        Event(r, raw, ts, meta)
        for r, raw, ts, meta in msgpack.unpackb(data, raw=False, strict_map_key=False)
    ]
