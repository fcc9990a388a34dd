"""The one event model that flows from sources through transforms and buffers to sinks."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import msgpack


@dataclass(slots=True)
class Event:
    """One log event.

    ``record`` holds the log's fields (the parsed JSON object, or ``{"message": line}`` for text),
    ``raw`` the original payload line as it was written, ``ts_ns`` the event time in nanoseconds
    since the epoch (UTC), and ``meta`` where it came from: ``source`` (component name), ``file``
    and ``offset`` or ``tag``, ``kubernetes`` (namespace/pod/container/container_id), ``id``
    (a stable id used for deduplication downstream), and flags such as ``truncated``.
    """

    record: dict[str, Any]
    raw: str
    ts_ns: int
    meta: dict[str, Any] = field(default_factory=dict)

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
        for root in (self.record, self.meta):
            cur: Any = root
            for part in path.split("."):
                if isinstance(cur, dict) and part in cur:
                    cur = cur[part]
                else:
                    break
            else:
                return cur
        return default


def pack_events(events: list[Event]) -> bytes:
    """Serialise a batch of events for the disk buffer."""
    return msgpack.packb(
        [(e.record, e.raw, e.ts_ns, e.meta) for e in events], use_bin_type=True, default=str
    )


def unpack_events(data: bytes) -> list[Event]:
    """Inverse of :func:`pack_events`."""
    return [
        Event(r, raw, ts, meta)
        for r, raw, ts, meta in msgpack.unpackb(data, raw=False, strict_map_key=False)
    ]
