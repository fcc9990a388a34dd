"""Build Loki push request bodies: protobuf + snappy (the default) or JSON + gzip.

The protobuf body is written straight to the wire format rather than through generated classes:
a push request is four nested messages of strings, varints and repeated fields, and writing them
directly costs about a microsecond per entry, less than building message objects. Field numbers
are those of Loki's ``pkg/push/push.proto`` (package ``logproto``)::

    PushRequest      { repeated StreamAdapter streams = 1; }
    StreamAdapter    { string labels = 1; repeated EntryAdapter entries = 2; }
    EntryAdapter     { google.protobuf.Timestamp timestamp = 1; string line = 2;
                       repeated LabelPairAdapter structuredMetadata = 3; }
    LabelPairAdapter { string name = 1; string value = 2; }
    Timestamp        { int64 seconds = 1; int32 nanos = 2; }
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from operator import add
from typing import Any

import cramjam
import orjson

from shipper.event import AUTHORITATIVE_ROOTS, Event
from shipper.sinks.loki.labels import MISSING, Stream, field_getter

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

_NOT_NAME = re.compile(r"[^a-zA-Z0-9_]")
_PAIR_CACHE = 4096
_TIME_CACHE = 4096  # nanosecond parts of CRI times rarely repeat: keep it small
_VARINTS = [bytes((n,)) if n < 0x80 else bytes(((n & 0x7F) | 0x80, n >> 7)) for n in range(1 << 14)]


@dataclass(slots=True)
class PushRequest:
    """An encoded push request and the streams it was built from (to read Loki's answer)."""

    body: bytes
    content_type: str
    content_encoding: str | None
    streams: list[Stream]


def varint(n: int) -> bytes:
    """Protobuf base-128 varint of an int (negative ones as 64-bit two's complement)."""
    if 0 <= n < 16384:
        return _VARINTS[n]
    n &= (1 << 64) - 1
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def metadata_name(path: str) -> str:
    """The structured-metadata name of a field path: ``kubernetes.pod_name`` -> ``kubernetes_pod_name``.

    Loki keeps names in label syntax and rewrites any other character the same way on ingest.
    """
    name = _NOT_NAME.sub("_", path)
    return "_" + name if name[:1].isdigit() else name


def _text(value: Any) -> str:
    return value if type(value) is str else orjson.dumps(value, default=str).decode()


def _utf8(text: str) -> bytes:
    try:
        return text.encode()
    except UnicodeEncodeError:  # lone surrogates: protobuf strings must be valid UTF-8
        return text.encode("utf-8", "replace")


def _pair_head(name: str, n: int) -> bytes:
    """Wire bytes before an n-byte value: field-3 tag and length, the name, the value's tag and length."""
    nb = name.encode()
    pair = b"\x0a" + varint(len(nb)) + nb + b"\x12" + varint(n)
    return b"\x1a" + varint(len(pair) + n) + pair


class StructuredMetadata:
    """The configured fields of an event as structured metadata; missing and empty ones are skipped.

    A field is read from the record, then from ``meta`` (``kubernetes.pod_name``). Non-string
    values are sent as JSON (``42``, ``true``).
    """

    def __init__(self, paths: list[str]) -> None:
        self.names = [metadata_name(p) for p in paths]
        self._getters = [field_getter(p) for p in paths]
        self.fields = [MetadataField(p, name) for p, name in zip(paths, self.names, strict=True)]

    def pairs(self, event: Event) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, get in zip(self.names, self._getters, strict=True):
            v = get(event.record, event.meta)
            if v is not None and (s := _text(v)):
                out[name] = s
        return out

    def encode(self, event: Event) -> bytes:
        """The entry's ``structuredMetadata`` fields (field 3, one per pair), wire-encoded."""
        return self.encode_all([event])[0]

    def encode_all(self, events: list[Event]) -> list[bytes]:
        """:meth:`encode` of each event, a field at a time over the whole list (columns cost less
        per value than a loop over fields per event)."""
        records = [e.record for e in events]
        metas = [e.meta for e in events]
        columns = [f.column(records, metas) for f in self.fields]
        if len(columns) == 1:
            return columns[0]
        return [b"".join(pairs) for pairs in zip(*columns, strict=True)]


class MetadataField:
    """One structured-metadata field: where to read it (as :func:`lookup_path` does) and its wire
    bytes per value.

    The bytes of values read from ``meta`` are cached (a batch's pod names repeat); the cache is
    dropped when it fills.
    """

    __slots__ = ("cache", "get", "heads", "key", "name", "root", "sub")

    def __init__(self, path: str, name: str) -> None:
        parts = path.split(".")
        self.name = name
        # A root the shipper derives (``kubernetes``) is read through lookup_path, meta first.
        self.key = path if len(parts) == 1 and path not in AUTHORITATIVE_ROOTS else None
        # Under an authoritative root the shipper derived, only ``meta`` is read (see lookup_path).
        authoritative = len(parts) == 2 and parts[0] in AUTHORITATIVE_ROOTS
        self.root: str | None = parts[0] if authoritative else None
        self.sub: str = parts[1] if authoritative else ""
        self.get = field_getter(path)
        self.heads = [_pair_head(name, n) for n in range(128)]
        self.cache: dict[str, bytes] = {}

    def column(self, records: list[dict[str, Any]], metas: list[dict[str, Any]]) -> list[bytes]:
        """The wire bytes of this field for each event (b"" where it is missing or empty)."""
        key, root, sub = self.key, self.root, self.sub
        if key is not None:
            values = [r.get(key, MISSING) for r in records]
            if MISSING in values:
                values = [m.get(key) if v is MISSING else v for v, m in zip(values, metas, strict=True)]
        elif root is not None:
            get = self.get  # only on a miss: a key holding dots may have it (as lookup_path finds it)
            # With no object at the root, the one key lookup_path can still find is "root.sub" itself.
            joined = f"{root}.{sub}"
            values = [(d[sub] if isinstance(d := m[root] if root in m else r.get(root), dict) and sub in d
                       else (r[joined] if joined in r and root not in m else m.get(joined)) if d is None
                       else get(r, m)) for r, m in zip(records, metas, strict=True)]
            return [self.cached_pair(v) for v in values]
        else:
            get = self.get
            values = [get(r, m) for r, m in zip(records, metas, strict=True)]
        return self.encode(values)

    def encode(self, values: list[Any]) -> list[bytes]:
        """The wire bytes of each value (b"" for a missing or empty one)."""
        heads = self.heads
        try:
            encoded = list(map(str.encode, values))  # strings only (TypeError otherwise), valid UTF-8
        except (TypeError, UnicodeEncodeError):
            if values.count(None) == len(values):
                return [b""] * len(values)
            return [self.pair(v) for v in values]
        sizes = list(map(len, encoded))
        if min(sizes, default=1) > 0 and max(sizes, default=0) < 128:  # the common case, a C loop per value
            return list(map(add, map(heads.__getitem__, sizes), encoded))
        return [heads[n] + b if 0 < (n := len(b)) < 128 else self.pair(b.decode()) for b in encoded]

    def meta_pair(self, meta: dict[str, Any]) -> bytes | None:
        """The wire bytes of this field for every event with metadata ``meta`` whatever its record
        holds (a field under a derived root that ``meta`` has), else None."""
        root = self.root
        if root is not None and root in meta:
            d = meta[root]
            if isinstance(d, dict) and self.sub in d:
                return self.cached_pair(d[self.sub])
        return None

    def cached_pair(self, v: Any) -> bytes:
        """:meth:`pair`, string values from a cache (the pod names of a batch repeat); the cache is
        dropped when it fills."""
        if type(v) is not str:
            return self.pair(v)
        cache = self.cache
        hit = cache.get(v)
        if hit is None:
            if len(cache) > _PAIR_CACHE:
                cache.clear()
            hit = self.pair(v, cache)
        return hit

    def pair(self, v: Any, cache: dict[str, bytes] | None = None) -> bytes:
        """The wire bytes of the pair with value ``v`` (b"" for a missing or empty one)."""
        text = "" if v is None else v if type(v) is str else _text(v)
        if not text:
            return b""
        try:
            vb = text.encode()
        except UnicodeEncodeError:  # lone surrogates: protobuf strings must be valid UTF-8
            vb = _utf8(text)
        n = len(vb)
        pair = (self.heads[n] if n < 128 else _pair_head(self.name, n)) + vb
        if cache is not None:
            cache[v] = pair
        return pair


class ProtobufEncoder:
    """``PushRequest`` protobuf, snappy block compressed (what Loki expects for protobuf)."""

    content_type = PROTOBUF
    content_encoding: str | None = None

    def __init__(self, metadata: StructuredMetadata) -> None:
        self.metadata = metadata
        # Wire bytes by label string, by whole second and by nanosecond part: consecutive entries
        # share them even when each has its own millisecond.
        self._heads: dict[str, bytes] = {}
        self._secs: dict[int, bytes] = {}
        self._nanos: dict[int, bytes] = {}

    def serialize(self, streams: list[Stream]) -> bytes:
        """The uncompressed ``PushRequest`` bytes."""
        sm_all = self.metadata.encode_all if self.metadata.names else None
        out: list[bytes] = []
        for s in streams:
            events = s.events
            try:
                lines = [e.raw.encode() for e in events]
            except UnicodeEncodeError:  # lone surrogates: protobuf strings must be valid UTF-8
                lines = [_utf8(e.raw) for e in events]
            sms = sm_all(events) if sm_all else [b""] * len(events)
            self.write_stream(out, s.labels, lines, [e.ts_ns for e in events], sms)
        return b"".join(out)

    def write_stream(self, out: list[bytes], labels: str, lines: list[bytes], times: list[int],
                     sms: list[bytes]) -> None:
        """Append one ``StreamAdapter`` (field 1 of the request, tag and length included) to
        ``out`` in pieces: its labels and an entry per line, with its time in nanoseconds and its
        structured-metadata wire bytes."""
        secs_of, nanos_of = self._secs, self._nanos
        if len(secs_of) > _TIME_CACHE or len(nanos_of) > _TIME_CACHE:
            secs_of.clear()
            nanos_of.clear()
        v = _VARINTS
        at = len(out)
        out.append(b"")  # the stream's tag and length, once its size is known
        head = self._stream_head(labels)
        out.append(head)
        size = len(head)
        extend = out.extend  # pieces, not an entry's bytes: each line is copied once, into the body
        for line, ts_ns, sm in zip(lines, times, sms, strict=True):
            secs, nanos = divmod(ts_ns, 1_000_000_000)
            ts = secs_of.get(secs)
            if ts is None:
                ts = secs_of[secs] = b"\x08" + varint(secs) if secs else b""
            tn = nanos_of.get(nanos)
            if tn is None:
                tn = nanos_of[nanos] = b"\x10" + varint(nanos) if nanos else b""
            ln = len(line)
            lv = v[ln] if ln < 16384 else varint(ln)
            lt = len(ts) + len(tn)
            n = lt + 3 + len(lv) + ln + len(sm)
            nv = v[n] if n < 16384 else varint(n)
            extend((b"\x12", nv, b"\x0a", v[lt], ts, tn, b"\x12", lv, line, sm))
            size += n + (2 if n < 128 else 3 if n < 16384 else 1 + len(nv))  # the entry's tag, length, bytes
        out[at] = b"\x0a" + varint(size)

    def _stream_head(self, labels: str) -> bytes:
        """A stream's ``labels`` field, encoded once per label set."""
        head = self._heads.get(labels)
        if head is None:
            if len(self._heads) >= _PAIR_CACHE:
                self._heads.clear()
            lb = _utf8(labels)
            head = self._heads[labels] = b"\x0a" + varint(len(lb)) + lb
        return head

    def encode(self, streams: list[Stream]) -> PushRequest:
        return self.request(self.serialize(streams), streams)

    def request(self, raw: bytes, streams: list[Stream]) -> PushRequest:
        """The push request of serialized ``PushRequest`` bytes (snappy block compressed)."""
        return PushRequest(bytes(cramjam.snappy.compress_raw(raw)), self.content_type, self.content_encoding, streams)


class JsonEncoder:
    """The JSON push format (``values: [[ts, line, {metadata}]]``), gzip compressed."""

    content_type = JSON
    content_encoding: str | None = "gzip"

    def __init__(self, metadata: StructuredMetadata, level: int = 1) -> None:
        self.metadata = metadata
        self.level = level  # fast: the bytes saved by a higher level cost more CPU than they return

    def serialize(self, streams: list[Stream]) -> bytes:
        pairs = self.metadata.pairs if self.metadata.names else None
        doc = {"streams": [
            {"stream": dict(s.pairs), "values": [
                [str(e.ts_ns), e.raw, sm] if pairs and (sm := pairs(e)) else [str(e.ts_ns), e.raw]
                for e in s.events
            ]}
            for s in streams
        ]}
        try:
            return orjson.dumps(doc)
        except orjson.JSONEncodeError:  # a line with lone surrogates: send it with replacements
            return _dumps_replacing(doc)

    def encode(self, streams: list[Stream]) -> PushRequest:
        body = bytes(cramjam.gzip.compress(self.serialize(streams), level=self.level))
        return PushRequest(body, self.content_type, self.content_encoding, streams)


def _dumps_replacing(doc: Any) -> bytes:
    """JSON of ``doc`` with strings that are not valid UTF-8 repaired (slow; only after a failure)."""
    def fix(x: Any) -> Any:
        if isinstance(x, str):
            return _utf8(x).decode()
        if isinstance(x, list):
            return [fix(i) for i in x]
        if isinstance(x, dict):
            return {fix(k): fix(v) for k, v in x.items()}
        return x
    return orjson.dumps(fix(doc))


Encoder = ProtobufEncoder | JsonEncoder


def build_encoder(encoding: str, metadata_fields: list[str]) -> Encoder:
    """The encoder for ``encoding`` (``protobuf`` or ``json``)."""
    metadata = StructuredMetadata(metadata_fields)
    return JsonEncoder(metadata) if encoding == "json" else ProtobufEncoder(metadata)
