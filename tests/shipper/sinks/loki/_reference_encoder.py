"""The protobuf push-request encoder as it was before the columnar rewrite, frozen as a reference.

The differential test checks that the production encoder writes the very same bytes for the same
streams; this copy must not change with it.
"""

from __future__ import annotations

from typing import Any

import orjson

from shipper.event import AUTHORITATIVE_ROOTS
from shipper.sinks.loki.encoder import metadata_name
from shipper.sinks.loki.labels import MISSING, Stream, field_getter

_VARINTS = [bytes((n,)) if n < 0x80 else bytes(((n & 0x7F) | 0x80, n >> 7)) for n in range(1 << 14)]


def varint(n: int) -> bytes:
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
    secs, nanos = divmod(ts_ns, 1_000_000_000)
    ts = (b"\x08" + varint(secs) if secs else b"") + (b"\x10" + varint(nanos) if nanos else b"")
    return b"\x0a" + varint(len(ts)) + ts


def _text(value: Any) -> str:
    return value if type(value) is str else orjson.dumps(value, default=str).decode()


def _utf8(text: str) -> bytes:
    try:
        return text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


def _pair_head(name: str, n: int) -> bytes:
    nb = name.encode()
    pair = b"\x0a" + varint(len(nb)) + nb + b"\x12" + varint(n)
    return b"\x1a" + varint(len(pair) + n) + pair


def _metadata(paths: list[str], record: dict[str, Any], meta: dict[str, Any]) -> bytes:
    out = b""
    for p in paths:
        get, name = field_getter(p), metadata_name(p)
        if "." not in p and p not in AUTHORITATIVE_ROOTS:  # (a derived root: meta first, since 2026-11-29)
            v = record.get(p, MISSING)
            if v is MISSING:
                v = meta.get(p)
        else:
            v = get(record, meta)
        if v is None:
            continue
        if type(v) is not str:
            v = _text(v)
        if v:
            vb = _utf8(v)
            out += _pair_head(name, len(vb)) + vb
    return out


def serialize(streams: list[Stream], paths: list[str]) -> bytes:
    """The uncompressed ``PushRequest`` bytes, as the encoder wrote them before."""
    out: list[bytes] = []
    for s in streams:
        labels = _utf8(s.labels)
        entries = [b"\x0a" + varint(len(labels)) + labels]
        for e in s.events:
            line = _utf8(e.raw)
            ts = timestamp_field(e.ts_ns)
            sm = _metadata(paths, e.record, e.meta)
            body = ts + b"\x12" + varint(len(line)) + line + sm
            entries.append(b"\x12" + varint(len(body)) + body)
        body = b"".join(entries)
        out.append(b"\x0a" + varint(len(body)))
        out.append(body)
    return b"".join(out)
