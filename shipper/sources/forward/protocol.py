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

MAX_CHUNK_LENGTH = 1024
"""Longest ``chunk`` id echoed in an ack (Fluentd and Fluent Bit send 24 base64 characters)."""

# Bytes handed to the scanner at once; its buffer holds at most one partial frame plus this.
_FEED_SLICE = 64 * 1024


@dataclass(slots=True)
class ForwardMessage:
    """One decoded frame: its tag, events, the ``chunk`` to echo in an ack, and skipped entries."""

    tag: str
    events: list[Event]
    chunk: Any = None
    skipped: list[str] = field(default_factory=list)


UNPACKER_BUFFER_BYTES = 1024 * 1024
"""The least a frame in progress is accounted for: the slot unit of the source's memory budget."""

DEFAULT_MAX_FRAME_VALUES = 1_000_000


class _ValueBudget:
    """Counts the values of one frame as msgpack builds its containers, and stops it past ``limit``.

    A value costs 50 to 500 bytes once decoded (a list, a dict, an event) while it may take one
    byte on the wire: counting bytes alone lets a 16 MiB frame become gigabytes. A container
    counts for itself and for its items (a map's keys and values), so nested containers count
    twice: a bound, not a census.
    """

    __slots__ = ("left", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = limit

    def __call__(self, container: Any) -> Any:
        self.left -= 1 + len(container) * (2 if type(container) is dict else 1)
        if self.left < 0:
            raise self._exceeded()
        return container

    def spend(self, values: int) -> None:
        """Count ``values`` that no container hook sees (top-level PackedForward entries)."""
        self.left -= values
        if self.left < 0:
            raise self._exceeded()

    def _exceeded(self) -> ForwardDecodeError:
        return ForwardDecodeError(FRAME_TOO_LARGE, f"more than max_frame_values={self.limit} values")

    def options(self) -> dict[str, Any]:
        """``Unpacker`` options applying this budget (one over-long container is refused up front)."""
        return {
            "list_hook": self, "object_hook": self, "max_array_len": self.limit, "max_map_len": self.limit,
        }


# surrogateescape keeps a PackedForward payload sent as msgpack ``str`` byte-exact; strings in
# records are repaired to U+FFFD later, only when they need it.
_UNPACK_OPTIONS: dict[str, Any] = {"raw": False, "unicode_errors": "surrogateescape", "strict_map_key": False}


class FrameDecoder:
    """Incremental msgpack framing of one connection's bytes, bounded by ``max_frame_bytes``.

    A skip-only scanner finds where a frame ends without building any object, so an unfinished
    frame costs its bytes only (see :attr:`held_bytes`), however it nests; the complete frame is
    then unpacked at once, within ``max_values`` values.
    """

    def __init__(
        self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES, max_values: int = DEFAULT_MAX_FRAME_VALUES
    ) -> None:
        self.max_frame_bytes = max_frame_bytes
        self.max_values = max_values
        self._scanner: msgpack.Unpacker | None = None
        self._frame = bytearray()  # the bytes of the frame in progress, from ``_frame[_consumed]``
        self._consumed = 0
        self._budget = _ValueBudget(max_values)
        self._unpack_options = {**_UNPACK_OPTIONS, **self._budget.options()}
        self._fed = 0
        self._frame_start = 0
        self._scanner_bytes = 0  # what the scanner's buffer may have grown to
        self.frames = 0  # completed so far

    def release(self) -> None:
        """Drop the scanner between frames: an idle connection holds no decoder memory."""
        if self.pending_bytes == 0:
            self._scanner = None
            self._frame = bytearray()
            self._fed = self._frame_start = self._scanner_bytes = self._consumed = 0

    @property
    def held_bytes(self) -> int:
        """Memory this decoder may hold: the frame's bytes and the scanner's buffer (1 MiB at least)."""
        if self._scanner is None:
            return 0
        # The scanner object itself is ~40 KiB: msgpack embeds its 1024-level parse stack.
        held: int = self._frame.__sizeof__() + self._scanner.__sizeof__() + self._scanner_bytes
        return max(UNPACKER_BUFFER_BYTES, held)

    @property
    def pending_bytes(self) -> int:
        """Bytes received of a frame that is not complete yet (non-zero at EOF: truncated)."""
        return self._fed - self._frame_start

    def feed(self, data: bytes) -> Iterator[Any]:
        """Yield every frame completed by ``data``; raise :class:`ForwardDecodeError` on bad input."""
        view = memoryview(data)
        limit = self.max_frame_bytes + _FEED_SLICE
        if self._scanner is None:
            self._scanner = msgpack.Unpacker(read_size=_FEED_SLICE, max_buffer_size=limit)
            self._scanner_bytes = _FEED_SLICE
        for start in range(0, len(view), _FEED_SLICE):
            part = view[start : start + _FEED_SLICE]
            # The scanner holds what it has not parsed yet (a long string waits whole); when that
            # outgrows its buffer msgpack reallocates twice the size, up to its maximum.
            need = self._fed - self._scanner.tell() + len(part)
            try:
                self._scanner.feed(part)
            except msgpack.BufferFull:
                raise self._too_large(self.pending_bytes + len(part)) from None
            if need > self._scanner_bytes:
                self._scanner_bytes = min(limit, 2 * need)
            self._frame += part
            self._fed += len(part)
            yield from self._frames()
            del self._frame[: self._consumed]
            self._consumed = 0

    def _frames(self) -> Iterator[Any]:
        scanner = self._scanner
        assert scanner is not None
        while True:
            try:
                scanner.skip()
            except msgpack.OutOfData:
                break
            except Exception as exc:  # the C unpacker raises several unrelated types on garbage
                raise ForwardDecodeError(INVALID_MSGPACK, _explain(exc)) from None
            size = scanner.tell() - self._frame_start
            if size > self.max_frame_bytes:
                raise self._too_large(size)
            frame = self._unpack(size)
            self._consumed += size
            self._frame_start += size
            self.frames += 1
            yield frame
        if self.pending_bytes > self.max_frame_bytes:
            raise self._too_large(self.pending_bytes)

    def _unpack(self, size: int) -> Any:
        self._budget.left = self._budget.limit
        start = self._consumed
        try:
            with memoryview(self._frame) as whole, whole[start : start + size] as frame:
                return msgpack.unpackb(frame, **self._unpack_options)
        except ForwardDecodeError:
            raise
        except Exception as exc:  # see _frames; the scanner accepted the bytes, the values did not
            raise _unpack_error(exc, "") from None

    def _too_large(self, size: int) -> ForwardDecodeError:
        return ForwardDecodeError(
            FRAME_TOO_LARGE, f"frame of at least {size} bytes exceeds max_frame_bytes={self.max_frame_bytes}"
        )


def decode_message(
    frame: Any,
    source: str,
    *,
    max_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    max_values: int = DEFAULT_MAX_FRAME_VALUES,
    now_ns: Callable[[], int] = time.time_ns,
) -> ForwardMessage:
    """Decode one unpacked frame into events for the source named ``source``.

    ``max_bytes`` and ``max_values`` bound a (Compressed)PackedForward payload's decompressed
    size and its number of values; ``now_ns`` stamps entries whose time is nil or 0 (as Fluentd
    does).
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
    if chunk is not None and len(chunk) > MAX_CHUNK_LENGTH:
        raise ForwardDecodeError(BAD_SHAPE, f"option chunk of {len(chunk)} characters, at most {MAX_CHUNK_LENGTH}")
    entries: Any
    if kind is list:
        entries = second
    elif batched:
        packed = second if kind is bytes else _str_bytes(second)
        entries = _unpack_entries(_decompress(packed, option, max_bytes), max_values)
    else:
        entries = ((second, frame[2]),)
    events, skipped = build_events(entries, tag, source, now_ns)
    return ForwardMessage(tag, events, chunk, skipped)


def encode_ack(chunk: Any) -> bytes:
    """The ``{"ack": chunk}`` reply, echoing the client's chunk id byte for byte."""
    ack: bytes = msgpack.packb({"ack": chunk}, unicode_errors="surrogateescape")
    return ack


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


def _unpack_error(exc: Exception, where: str) -> ForwardDecodeError:
    # msgpack refuses a container longer than max_array_len / max_map_len with a ValueError.
    reason = FRAME_TOO_LARGE if "exceeds max_" in str(exc) else INVALID_MSGPACK
    return ForwardDecodeError(reason, where + _explain(exc))


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


def _unpack_entries(data: bytes, max_values: int) -> list[Any]:
    budget = _ValueBudget(max_values)
    size = max(len(data), 1)
    unpacker = msgpack.Unpacker(**_UNPACK_OPTIONS, read_size=size, max_buffer_size=size, **budget.options())
    unpacker.feed(data)
    entries: list[Any] = []
    end = 0
    try:
        for entry in unpacker:
            budget.spend(1)
            entries.append(entry)
            end = unpacker.tell()
    except ForwardDecodeError:
        raise
    except Exception as exc:  # see FrameDecoder._frames
        raise _unpack_error(exc, "packed entries: ") from None
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
