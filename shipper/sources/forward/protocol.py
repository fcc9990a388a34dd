"""The Fluentd forward protocol v1 decoded into events, with no sockets involved.

:class:`FrameDecoder` cuts a TCP byte stream into msgpack frames no larger than
``max_frame_bytes``; :func:`decode_message` turns one frame (Message, Forward, PackedForward or
CompressedPackedForward mode) into a :class:`ForwardMessage`: the events and the ``chunk`` id to
acknowledge once they are delivered. Anything malformed raises :class:`ForwardDecodeError`;
a single bad entry inside a good message is skipped and reported in ``skipped`` instead.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgpack

from shipper.event import Event
from shipper.sources.forward.entries import build_events, repair_str
from shipper.sources.forward.errors import (
    BAD_GZIP,
    BAD_SHAPE,
    FRAME_TOO_LARGE,
    INVALID_MSGPACK,
    TRUNCATED,
    UNKNOWN_COMPRESSION,
    ForwardDecodeError,
)

DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024

# Bytes handed to the unpacker at once; its buffer holds at most one partial frame plus this.
_FEED_SLICE = 64 * 1024


@dataclass(slots=True)
class ForwardMessage:
    """One decoded frame: its tag, events, the ``chunk`` to echo in an ack, and skipped entries."""

    tag: str
    events: list[Event]
    chunk: Any = None
    skipped: list[str] = field(default_factory=list)


UNPACKER_BUFFER_BYTES = 1024 * 1024
"""msgpack's Unpacker allocates a buffer of at least this size, whatever its limits."""


def _unpacker(max_buffer_size: int) -> msgpack.Unpacker:
    # surrogateescape keeps a PackedForward payload sent as msgpack ``str`` byte-exact; strings
    # in records are repaired to U+FFFD later, only when they need it.
    return msgpack.Unpacker(
        raw=False,
        unicode_errors="surrogateescape",
        strict_map_key=False,
        max_buffer_size=max_buffer_size,
    )


class FrameDecoder:
    """Incremental msgpack framing of one connection's bytes, bounded by ``max_frame_bytes``."""

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._unpacker: msgpack.Unpacker | None = None
        self._fed = 0
        self._frame_start = 0
        self.frames = 0  # completed so far

    def release(self) -> None:
        """Drop the unpacker between frames: it holds at least 1 MiB, an idle connection none."""
        if self.pending_bytes == 0:
            self._unpacker = None
            self._fed = self._frame_start = 0

    @property
    def held_bytes(self) -> int:
        """Memory this decoder holds: its unpacker's buffer (1 MiB at least) while one exists."""
        return 0 if self._unpacker is None else max(UNPACKER_BUFFER_BYTES, self.pending_bytes)

    @property
    def pending_bytes(self) -> int:
        """Bytes received of a frame that is not complete yet (non-zero at EOF: truncated)."""
        return self._fed - self._frame_start

    def feed(self, data: bytes) -> Iterator[Any]:
        """Yield every frame completed by ``data``; raise :class:`ForwardDecodeError` on bad input."""
        view = memoryview(data)
        if self._unpacker is None:
            self._unpacker = _unpacker(self.max_frame_bytes + _FEED_SLICE)
        for start in range(0, len(view), _FEED_SLICE):
            part = view[start : start + _FEED_SLICE]
            try:
                self._unpacker.feed(part)
            except msgpack.BufferFull:
                raise self._too_large(self.pending_bytes + len(part)) from None
            self._fed += len(part)
            yield from self._frames()

    def _frames(self) -> Iterator[Any]:
        unpacker = self._unpacker
        assert unpacker is not None
        while True:
            try:
                frame = next(unpacker)
            except StopIteration:
                break
            except Exception as exc:  # the C unpacker raises several unrelated types on garbage
                raise ForwardDecodeError(INVALID_MSGPACK, _explain(exc)) from None
            end = unpacker.tell()
            size, self._frame_start = end - self._frame_start, end
            if size > self.max_frame_bytes:
                raise self._too_large(size)
            self.frames += 1
            yield frame
        if self.pending_bytes > self.max_frame_bytes:
            raise self._too_large(self.pending_bytes)

    def _too_large(self, size: int) -> ForwardDecodeError:
        return ForwardDecodeError(
            FRAME_TOO_LARGE, f"frame of at least {size} bytes exceeds max_frame_bytes={self.max_frame_bytes}"
        )


def decode_message(
    frame: Any,
    source: str,
    *,
    max_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    now_ns: Callable[[], int] = time.time_ns,
) -> ForwardMessage:
    """Decode one unpacked frame into events for the source named ``source``.

    ``max_bytes`` bounds the decompressed size of a CompressedPackedForward payload; ``now_ns``
    stamps entries whose time is nil or 0 (as Fluentd does).
    """
    if type(frame) is not list or not 2 <= len(frame) <= 4:
        raise ForwardDecodeError(BAD_SHAPE, f"expected [tag, time|entries, ...], got {_describe(frame)}")
    tag = _tag(frame[0])
    second = frame[1]
    kind = type(second)
    batched = kind is list or kind is bytes or kind is str  # Forward or (Compressed)PackedForward
    if batched and len(frame) == 4:
        raise ForwardDecodeError(BAD_SHAPE, "Forward/PackedForward message with 4 elements")
    if not batched and len(frame) == 2:
        raise ForwardDecodeError(BAD_SHAPE, "Message mode needs [tag, time, record]")
    option_at = 2 if batched else 3
    option = _option(frame[option_at] if len(frame) > option_at else None)
    chunk = option.get("chunk") if option else None
    if chunk is not None and type(chunk) is not str and type(chunk) is not bytes:
        raise ForwardDecodeError(BAD_SHAPE, f"option chunk must be a string, got {_describe(chunk)}")
    entries: Any
    if kind is list:
        entries = second
    elif batched:
        packed = second if kind is bytes else _str_bytes(second)
        entries = _unpack_entries(_decompress(packed, option, max_bytes))
    else:
        entries = ((second, frame[2]),)
    events, skipped = build_events(entries, tag, source, now_ns)
    return ForwardMessage(tag, events, chunk, skipped)


def encode_ack(chunk: Any) -> bytes:
    """The ``{"ack": chunk}`` reply, echoing the client's chunk id byte for byte."""
    return msgpack.packb({"ack": chunk}, unicode_errors="surrogateescape")


def gunzip(data: bytes, max_bytes: int) -> bytes:
    """Decompress one or more concatenated gzip members, refusing more than ``max_bytes`` of output."""
    out: list[bytes] = []
    total = 0
    rest = data
    try:
        while rest:
            d = zlib.decompressobj(wbits=31)
            part = d.decompress(rest, max_bytes - total + 1)
            total += len(part)
            if total > max_bytes:
                raise ForwardDecodeError(
                    FRAME_TOO_LARGE, f"decompressed payload exceeds max_frame_bytes={max_bytes}"
                )
            if not d.eof:
                raise ForwardDecodeError(BAD_GZIP, "gzip member is truncated")
            out.append(part)
            rest = d.unused_data
    except zlib.error as exc:
        raise ForwardDecodeError(BAD_GZIP, str(exc)) from None
    return b"".join(out)


def _explain(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _describe(obj: Any) -> str:
    if type(obj) in (list, dict):
        return f"{type(obj).__name__} of {len(obj)}"
    return type(obj).__name__


def _tag(tag: Any) -> str:
    if type(tag) is str:
        return repair_str(tag)
    if type(tag) is bytes:
        return tag.decode("utf-8", "replace")
    raise ForwardDecodeError(BAD_SHAPE, f"tag must be a string, got {_describe(tag)}")


def _option(option: Any) -> dict[Any, Any] | None:
    if option is None or type(option) is dict:
        return option
    raise ForwardDecodeError(BAD_SHAPE, f"option must be a map, got {_describe(option)}")


def _decompress(packed: bytes, option: dict[Any, Any] | None, max_bytes: int) -> bytes:
    compressed = option.get("compressed") if option else None
    if compressed is None or compressed == "text":
        return packed
    if compressed == "gzip":
        return gunzip(packed, max_bytes)
    raise ForwardDecodeError(UNKNOWN_COMPRESSION, f"compressed={compressed!r} is not supported")


def _unpack_entries(data: bytes) -> list[Any]:
    unpacker = _unpacker(max(len(data), 1))
    unpacker.feed(data)
    entries: list[Any] = []
    end = 0
    try:
        for entry in unpacker:
            entries.append(entry)
            end = unpacker.tell()
    except Exception as exc:  # see FrameDecoder._frames
        raise ForwardDecodeError(INVALID_MSGPACK, f"packed entries: {_explain(exc)}") from None
    # tell() only marks where the last complete entry ended; anything after it is a partial one.
    if end != len(data):
        raise ForwardDecodeError(TRUNCATED, "packed entries end in the middle of an entry")
    return entries


def _str_bytes(s: str) -> bytes:
    """The original bytes of a msgpack ``str`` (PackedForward from clients predating ``bin``)."""
    try:
        return s.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise ForwardDecodeError(BAD_SHAPE, "packed entries are not a byte string") from None
