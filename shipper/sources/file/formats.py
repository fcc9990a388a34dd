"""Line formats: unwrap CRI and docker json-file lines, reassembling their partial lines."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from shipper.sources.records import parse_rfc3339_ns


@dataclass(slots=True)
class Unwrapped:
    """A line's payload; ``partial`` means the runtime split a longer line and more follows."""

    payload: str
    ts_text: str | None
    stream: str | None
    partial: bool

    @property
    def ts_ns(self) -> int | None:
        """The runtime's timestamp, parsed only when the record has none of its own."""
        return parse_rfc3339_ns(self.ts_text) if self.ts_text else None


class FormatError(ValueError):
    """A line that does not fit its format."""


def parse_cri(line: str) -> Unwrapped:
    """``<RFC3339Nano> <stdout|stderr> <P|F> <message>`` (CRI logging format)."""
    parts = line.split(" ", 3)
    if len(parts) < 3:
        raise FormatError("not a CRI line: expected '<time> <stream> <tag> <message>'")
    ts = parts[0]
    if len(ts) < 20 or ts[4] != "-" or ts[10] not in "Tt":
        raise FormatError(f"not a CRI line: bad timestamp {ts[:40]!r}")
    tag = parts[2]
    return Unwrapped(parts[3] if len(parts) == 4 else "", ts, parts[1], tag[:1] == "P")


def parse_docker(line: str) -> Unwrapped:
    """``{"log": "...\\n", "stream": "stdout", "time": "..."}``; no trailing newline = partial."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise FormatError(f"not a docker json-file line: {exc}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("log"), str):
        raise FormatError("not a docker json-file line: no 'log' string")
    log = obj["log"]
    partial = not log.endswith("\n")
    if not partial:
        log = log[:-1]
        if log.endswith("\r"):
            log = log[:-1]
    t = obj.get("time")
    stream = obj.get("stream")
    return Unwrapped(log, t if isinstance(t, str) else None, stream if isinstance(stream, str) else None, partial)


def parse_plain(line: str) -> Unwrapped:
    """``json`` and ``text`` lines are their own payload."""
    return Unwrapped(line, None, None, False)


PARSERS = {"cri": parse_cri, "docker": parse_docker, "json": parse_plain, "text": parse_plain}
