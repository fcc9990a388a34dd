"""The one event model that flows from sources through transforms and buffers to sinks."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import msgpack
import orjson

from shipper import metrics

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# orjson reads objects 1024 deep but writes only 254; sinks and dead letters wrap a record in a
# few more levels. A record deeper than this is kept as text.
MAX_RECORD_DEPTH = 200
_DEEP_MIN_CHARS = 2 * MAX_RECORD_DEPTH  # an opening and a closing bracket per level


class Event:
    """One log event.

    ``record`` holds the log's fields (the parsed JSON object, or ``{"message": line}`` for text),
    ``raw`` the original payload line as it was written, ``ts_ns`` the event time in nanoseconds
    since the epoch (UTC), and ``meta`` where it came from: ``source`` (component name), ``file``
    and ``offset`` or ``tag``, ``kubernetes`` (namespace/pod/container/container_id), ``id``
    (a stable id used for deduplication downstream), and flags such as ``truncated`` and
    ``repaired`` (what was changed so the event can be delivered: ``time_out_of_range`` when the
    time does not fit int64 nanoseconds and the read time replaced it, ``too_deep`` when an object
    nests deeper than :data:`MAX_RECORD_DEPTH` and is kept as text, ``unpackable``).

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
        self.meta = {} if meta is None else meta
        self.derived = derived or record is None
        # Every source makes its events here, so no event holds a time a sink cannot encode.
        if not (type(ts_ns) is int and -0x8000000000000000 <= ts_ns <= 0x7FFFFFFFFFFFFFFF):
            ts_ns = self._repair_time(ts_ns)
        self.ts_ns = ts_ns
        # A record given here (a lazily parsed one is checked when parsed) is checked for depth
        # only when the raw line holds enough brackets to be that deep.
        if record is not None and len(raw) > _DEEP_MIN_CHARS and _bracket_count(raw) > MAX_RECORD_DEPTH:
            self._repair_depth(record)

    def _repair_time(self, ts_ns: object) -> int:
        if type(ts_ns) is float and INT64_MIN <= ts_ns <= INT64_MAX:  # NaN fails the comparison
            return int(ts_ns)
        self.repaired("time_out_of_range")
        return time.time_ns()

    def _repair_depth(self, record: dict[str, Any]) -> None:
        if len(record) == 1 and record.get("message") is self.raw:
            # Already the text form (record_from_payload's): flag it if depth was the reason.
            obj = _object_of(self.raw)
            if obj is not None and _deeper_than(obj, MAX_RECORD_DEPTH):
                self.repaired("too_deep")
        elif _deeper_than(record, MAX_RECORD_DEPTH):
            self._record = {"message": self.raw}
            self.repaired("too_deep")

    def repaired(self, reason: str) -> None:
        """Flag this event as changed so it can be delivered (``meta["repaired"]``) and count it."""
        done = self.meta.get("repaired") or []
        if reason in done:
            return
        self.meta["repaired"] = [*done, reason]  # a new list: copies of this event share ``meta`` values
        source = self.meta.get("source")
        metrics.EVENTS_REPAIRED.labels(f"source:{source}" if source else "event", reason).inc()

    @property
    def record(self) -> dict[str, Any]:
        rec = self._record
        if rec is None:
            rec = self._record = self._parse()
        return rec

    @record.setter
    def record(self, value: dict[str, Any]) -> None:
        self._record = value
        self.derived = False

    def record_copy(self) -> dict[str, Any]:
        """A record the caller may change, without the event keeping one: parsed anew from the raw
        line unless the event already holds its record (then a shallow copy). A sink that reads
        each record once (the bulk encoder) keeps no parsed record per event in flight."""
        rec = self._record
        return dict(rec) if rec is not None else self._parse()

    def _parse(self) -> dict[str, Any]:
        """The record of the raw line (see :attr:`record`)."""
        # _object_of and _too_deep inlined: a sink that reads fields parses every event here.
        raw = self.raw
        rec = None
        if raw[:1] == "{":
            try:
                rec = orjson.loads(raw)
            except orjson.JSONDecodeError:
                rec = None
        if type(rec) is not dict:
            return {"message": raw}
        if len(raw) > _DEEP_MIN_CHARS and _bracket_count(raw) > MAX_RECORD_DEPTH \
                and _deeper_than(rec, MAX_RECORD_DEPTH):
            self.repaired("too_deep")
            return {"message": raw}
        return rec

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
    A key holding dots (the label ``app.kubernetes.io/name``) is found when the path as split misses:
    ``kubernetes.pod_labels.app.kubernetes.io/name`` then tries the longest keys joined from the
    remaining parts first.
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
        if len(parts) > 1:
            found = _lookup_joined(root, parts, 0)
            if found is not _ABSENT:
                return found
    return missing


_ABSENT: Any = object()


def _lookup_joined(cur: Any, parts: tuple[str, ...], i: int) -> Any:
    """The value at ``parts[i:]`` below ``cur`` where a key may be several parts joined by dots."""
    if i == len(parts):
        return cur
    if not isinstance(cur, dict):
        return _ABSENT
    for j in range(len(parts), i, -1):
        key = parts[i] if j == i + 1 else ".".join(parts[i:j])
        if key in cur:
            found = _lookup_joined(cur[key], parts, j)
            if found is not _ABSENT:
                return found
    return _ABSENT


def record_from_payload(payload: str) -> dict[str, Any]:
    """A JSON object payload becomes its fields; anything else becomes ``{"message": payload}``.

    So does an object nested deeper than :data:`MAX_RECORD_DEPTH`, which no sink could encode.
    """
    obj = _object_of(payload)
    if obj is None or _too_deep(payload, obj):
        return {"message": payload}
    return obj


def _object_of(payload: str) -> dict[str, Any] | None:
    """The JSON object ``payload`` holds, or None."""
    if payload[:1] != "{":
        return None
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def _bracket_count(text: str) -> int:
    return text.count("{") + text.count("[")


def _too_deep(payload: str, obj: dict[str, Any]) -> bool:
    """Whether ``obj`` (parsed from ``payload``) nests too deep; walked only if the text could."""
    return (
        len(payload) > _DEEP_MIN_CHARS
        and _bracket_count(payload) > MAX_RECORD_DEPTH
        and _deeper_than(obj, MAX_RECORD_DEPTH)
    )


def _deeper_than(obj: Any, limit: int) -> bool:
    """Whether dicts and lists nest more than ``limit`` levels (iterative: no recursion limit)."""
    stack = [(obj, 1)]
    while stack:
        cur, depth = stack.pop()
        if depth > limit:
            return True
        for child in cur.values() if isinstance(cur, dict) else cur:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return False


def pack_events(events: list[Event]) -> bytes:
    """Serialise a batch of events for the disk buffer (a derived record is not stored).

    A value msgpack cannot hold costs only its own event, which is stored in a JSON-safe form.
    """
    try:
        return _packb(list(map(buffer_entry, events)))
    except (TypeError, ValueError, OverflowError):
        pass
    packer = msgpack.Packer(use_bin_type=True)
    return packer.pack_array_header(len(events)) + b"".join(pack_one(e) for e in events)


def buffer_entry(e: Event) -> tuple[Any, ...]:
    """What the buffer stores of an event (a derived record is not stored: it is parsed again from ``raw``)."""
    return (None if e.derived else e._record, e.raw, e.ts_ns, e.meta)


def _packb(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def pack_one(e: Event) -> bytes:
    """One event's buffer entry; a value msgpack cannot hold is stored in a JSON-safe form (flagged)."""
    if not (type(e.ts_ns) is int and INT64_MIN <= e.ts_ns <= INT64_MAX):  # set after the event was made
        e.ts_ns = e._repair_time(e.ts_ns)
    try:
        return _packb((None if e.derived else e._record, e.raw, e.ts_ns, e.meta))
    except (TypeError, ValueError, OverflowError):
        pass
    e.repaired("unpackable")
    raw = e.raw.encode("utf-8", "replace").decode("utf-8")
    record = None if e.derived else _json_safe(e._record, {"message": raw})
    meta = _json_safe(e.meta, {str(k): v if k == "repaired" else str(v) for k, v in e.meta.items()})
    return _packb((record, raw, e.ts_ns, meta))


def _json_safe(value: Any, fallback: dict[str, Any]) -> Any:
    """``value`` through JSON (unknown types as text), or ``fallback`` if even that fails."""
    try:
        return orjson.loads(orjson.dumps(value, default=str))
    except (TypeError, orjson.JSONEncodeError):
        return fallback


def unpack_events(data: bytes, entries: list[Any] | None = None) -> list[Event]:
    """Inverse of :func:`pack_events` (``entries``: ``data`` already unpacked); stored events were
    checked when made, so not again here."""
    out = []
    new = Event.__new__
    if entries is None:
        entries = msgpack.unpackb(data, raw=False, strict_map_key=False)
    for r, raw, ts, meta in entries:
        e = new(Event)
        e._record, e.raw, e.meta, e.derived = r, raw, meta, r is None
        # A buffer written before times were checked may hold one that is out of range.
        e.ts_ns = ts if type(ts) is int and INT64_MIN <= ts <= INT64_MAX else e._repair_time(ts)
        out.append(e)
    return out
