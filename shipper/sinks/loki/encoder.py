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
from typing import Any

import cramjam
import orjson

from shipper.event import Event
from shipper.sinks.loki.labels import MISSING, Stream, field_getter

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

_NOT_NAME = re.compile(r"[^a-zA-Z0-9_]")
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


def timestamp_field(ts_ns: int) -> bytes:
    """An entry's ``timestamp`` field (1): a ``google.protobuf.Timestamp`` of seconds and nanos."""
    secs, nanos = divmod(ts_ns, 1_000_000_000)
    # Zero fields are left out, as protobuf writes them.
    ts = (b"\x08" + varint(secs) if secs else b"") + (b"\x10" + varint(nanos) if nanos else b"")
    return b"\x0a" + varint(len(ts)) + ts


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
        # For encode: (path; its getter if dotted, None for a top-level key, read inline; name;
        # wire heads by value length < 128).
        self._fields = [
            (p, get if "." in p else None, name, [_pair_head(name, n) for n in range(128)])
            for p, get, name in zip(paths, self._getters, self.names, strict=True)
        ]

    def pairs(self, event: Event) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, get in zip(self.names, self._getters, strict=True):
            v = get(event.record, event.meta)
            if v is not None and (s := _text(v)):
                out[name] = s
        return out

    def encode(self, event: Event) -> bytes:
        """The entry's ``structuredMetadata`` fields (field 3, one per pair), wire-encoded."""
        record, meta = event.record, event.meta
        out = b""
        for key, get, name, heads in self._fields:
            if get is None:  # a top-level key, read inline: this runs for every field of every event
                v = record.get(key, MISSING)
                if v is MISSING:
                    v = meta.get(key)
            else:
                v = get(record, meta)
            if v is None:
                continue
            if type(v) is not str:
                v = _text(v)
            if v:
                try:  # inline rather than _utf8(): this runs for every field of every event
                    vb = v.encode()
                except UnicodeEncodeError:
                    vb = _utf8(v)
                n = len(vb)
                out += (heads[n] if n < 128 else _pair_head(name, n)) + vb
        return out


class ProtobufEncoder:
    """``PushRequest`` protobuf, snappy block compressed (what Loki expects for protobuf)."""

    content_type = PROTOBUF
    content_encoding: str | None = None

    def __init__(self, metadata: StructuredMetadata) -> None:
        self.metadata = metadata

    def serialize(self, streams: list[Stream]) -> bytes:
        """The uncompressed ``PushRequest`` bytes."""
        out: list[bytes] = []
        sm_encode = self.metadata.encode if self.metadata.names else None
        ts_fields: dict[int, bytes] = {}  # lines of a batch often share a timestamp
        v = _VARINTS
        for s in streams:
            labels = _utf8(s.labels)
            entries = [b"\x0a" + varint(len(labels)) + labels]
            for e in s.events:
                try:
                    line = e.raw.encode()
                except UnicodeEncodeError:
                    line = _utf8(e.raw)
                t = e.ts_ns
                ts = ts_fields.get(t)
                if ts is None:
                    ts = ts_fields[t] = timestamp_field(t)
                sm = sm_encode(e) if sm_encode else b""
                ln = len(line)
                lv = v[ln] if ln < 16384 else varint(ln)
                n = len(ts) + 1 + len(lv) + ln + len(sm)
                entries.append(b"\x12%b%b\x12%b%b%b" % (v[n] if n < 16384 else varint(n), ts, lv, line, sm))
            body = b"".join(entries)
            out.append(b"\x0a" + varint(len(body)))
            out.append(body)
        return b"".join(out)

    def encode(self, streams: list[Stream]) -> PushRequest:
        body = bytes(cramjam.snappy.compress_raw(self.serialize(streams)))
        return PushRequest(body, self.content_type, self.content_encoding, streams)


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
