"""Read a Loki 400 answer back onto the events of the request: which were rejected, and why.

Loki (3.x) stores the good entries of a push and answers 400 naming the bad ones, in two formats:

* from the distributor's validation, items joined by ``"; "``, each ``"N errors like: "`` + one
  example when several entries gave the same message (the timestamp in it is cut to the second)::

      2 errors like: entry for stream '{service="api", service_name="api"}' has timestamp too old:
      2026-11-18T16:17:09Z, oldest acceptable timestamp is: 2026-11-20T00:17:09Z

* from the ingester, one line per entry (at most 10) then a summary for the stream::

      entry with timestamp 2026-11-26 22:17:33.24975301 +0000 UTC ignored, reason: 'entry too far
      behind, entry timestamp is: ..., oldest acceptable timestamp is: ...',
      user 'fake', total ignored: 3 out of 4 for stream: {service="c2", service_name="c2"}

The answer is a partial report: the ingester names only one stream's failures, the distributor's
and the ingester's reports hide each other, and entries past the tenth go unnamed. So only entries
the answer pins down are rejected; the other entries of the batch count as accepted only where a
complete ingester summary accounts for their whole stream, and are otherwise resent. Resending is
harmless: Loki drops exact duplicates (same stream, timestamp and line), and an entry that was
rejected unnamed is rejected again, this time by name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from shipper.event import Event
from shipper.sinks.loki.labels import Stream

_COUNT = r"(?:(?P<count>\d+) errors like: )?"
_LABELS = r'\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"(?:, )?)*\}'
_STREAM = r"stream '(?P<labels>" + _LABELS + ")'"
_RFC3339 = r"(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d))"

_TOO_OLD = re.compile(_COUNT + r"(?P<msg>entry for " + _STREAM + r" has timestamp too old: " + _RFC3339
                      + r", oldest acceptable timestamp is: [0-9TZ:.+-]+)")
_TOO_NEW = re.compile(_COUNT + r"(?P<msg>entry for " + _STREAM + r" has timestamp too new: " + _RFC3339 + ")")
_LINE_TOO_LONG = re.compile(_COUNT + r"(?P<msg>max entry size '\d+' bytes exceeded for " + _STREAM
                            + r" while adding an entry with length '(?P<size>\d+)' bytes)", re.I)
_SM_TOO_LARGE = re.compile(_COUNT + r"(?P<msg>" + _STREAM + r" has structured metadata too large: "
                           r"'(?P<size>\d+)' bytes[^;\n]*)")
_SM_TOO_MANY = re.compile(_COUNT + r"(?P<msg>" + _STREAM + r" has too many structured metadata labels: "
                          r"'(?P<size>\d+)'[^;\n]*)")
_SM_DISALLOWED = re.compile(_COUNT + r"(?P<msg>" + _STREAM + r" includes structured metadata, but this "
                            r"feature is disallowed[^;\n]*)")
_WHOLE_STREAM = re.compile(
    _COUNT + r"(?P<msg>(?:entry for )?" + _STREAM + r" has (?:label name too long|label value too long|"
    r"duplicate label name|\d+ label names; limit)[^;\n]*|Error parsing labels '(?P<labels2>" + _LABELS + ")' "
    r"with error[^;\n]*)", re.I)
_INGESTER_ENTRY = re.compile(
    r"entry with timestamp (?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? [+-]\d{4}) \S+ ignored, "
    r"reason: '(?P<reason>[^'\n]*)',?")
_INGESTER_SUMMARY = re.compile(
    r"total ignored: (?P<ignored>\d+) out of (?P<total>\d+) for stream: (?P<labels>" + _LABELS + r")\s*$", re.M)
_GO_TIME = re.compile(r"(?P<base>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?:\.(?P<frac>\d{1,9}))? "
                      r"(?P<sign>[+-])(?P<hh>\d\d)(?P<mm>\d\d)")
_LABEL_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
_GO_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|.)", re.S)
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
# Labels Loki adds to a stream on ingest (they appear in its error messages, not in our request).
_ADDED_LABELS = frozenset({"service_name"})


@dataclass(slots=True)
class Verdict:
    """What a 400 says about each event: ``rejected`` (with Loki's reason) or ``unconfirmed``."""

    rejected: list[tuple[Event, str]] = field(default_factory=list)
    unconfirmed: list[Event] = field(default_factory=list)


def read_rejections(body: str, streams: list[Stream],
                    metadata: Callable[[Event], dict[str, str]] | None = None) -> Verdict:
    """Map a 400 body onto the request's events (see the module doc for what can be known)."""
    match = _StreamMatcher(streams)
    reasons: dict[int, str] = {}  # id(event) -> reason
    complete: set[int] = set()  # id(stream) wholly accounted for by an ingester summary

    def reject(events: list[Event], reason: str) -> None:
        for e in events:
            reasons.setdefault(id(e), reason)

    for rx, kind in ((_TOO_OLD, "greater_than_max_sample_age"), (_TOO_NEW, "too_far_in_future")):
        for m in rx.finditer(body):
            s = match(m["labels"])
            if s is not None:
                n, second = int(m["count"] or 1), _rfc3339_second(m["ts"])
                same = [e for e in s.events if e.ts_ns // 1_000_000_000 == second]
                # Both limits are thresholds on time: the N oldest (newest) of that second failed.
                failed = same[:n] if kind == "greater_than_max_sample_age" else same[-n:]
                reject(failed, f"{kind}: {m['msg']}")
    for m in _LINE_TOO_LONG.finditer(body):
        s = match(m["labels"])
        if s is not None:
            size = int(m["size"])
            reject([e for e in s.events if len(e.raw.encode("utf-8", "replace")) == size],
                   f"line_too_long: {m['msg']}")
    if metadata is not None:
        _read_metadata_errors(body, match, metadata, reject)
    for m in _WHOLE_STREAM.finditer(body):
        s = match(m["labels"] or m["labels2"])
        if s is not None:
            reject(s.events, f"invalid_labels: {m['msg']}")
    _read_ingester_errors(body, match, reject, complete)

    verdict = Verdict()
    for s in streams:
        for e in s.events:
            reason = reasons.get(id(e))
            if reason is not None:
                verdict.rejected.append((e, reason))
            elif id(s) not in complete:
                verdict.unconfirmed.append(e)
    return verdict


def _read_metadata_errors(body: str, match: _StreamMatcher, metadata: Callable[[Event], dict[str, str]],
                          reject: Callable[[list[Event], str], None]) -> None:
    checks: list[tuple[re.Pattern[str], str, Callable[[dict[str, str], int], bool]]] = [
        (_SM_TOO_LARGE, "structured_metadata_too_large",
         lambda sm, size: sum(len(k.encode()) + len(v.encode()) for k, v in sm.items()) == size),
        (_SM_TOO_MANY, "structured_metadata_too_many", lambda sm, size: len(sm) == size),
        (_SM_DISALLOWED, "disallowed_structured_metadata", lambda sm, size: bool(sm)),
    ]
    for rx, kind, fits in checks:
        for m in rx.finditer(body):
            s = match(m["labels"])
            if s is not None:
                size = int(m.groupdict().get("size") or 0)
                reject([e for e in s.events if fits(metadata(e), size)], f"{kind}: {m['msg']}")


def _read_ingester_errors(body: str, match: _StreamMatcher, reject: Callable[[list[Event], str], None],
                          complete: set[int]) -> None:
    pos = 0
    for summary in _INGESTER_SUMMARY.finditer(body):
        listed = list(_INGESTER_ENTRY.finditer(body, pos, summary.start()))
        pos = summary.end()
        s = match(summary["labels"])
        if s is None:
            continue
        named: list[Event] = []
        for m in listed:
            ts = _go_time_ns(m["ts"])
            hits = [e for e in s.events if e.ts_ns == ts]
            reject(hits, f"{_reason_kind(m['reason'])}: {m.group(0).rstrip(',')}")
            named += hits
        ignored, total = int(summary["ignored"]), int(summary["total"])
        if total != len(s.events):
            continue  # the distributor dropped some of this stream too, unnamed: resend the rest
        if len({id(e) for e in named}) >= ignored:
            complete.add(id(s))
        elif listed and all("too far behind" in m["reason"] for m in listed):
            # Loki lists ten; "too far behind" is a threshold on time, so the oldest failed.
            reject(s.events[:ignored], f"too_far_behind: one of {ignored} entries Loki ignored as too far "
                   f"behind for stream {summary['labels']} (first: {listed[0]['reason']})")
            complete.add(id(s))


def _reason_kind(reason: str) -> str:
    if "too far behind" in reason:
        return "too_far_behind"
    if "out of order" in reason:
        return "out_of_order"
    return "ignored"


class _StreamMatcher:
    """Finds the request's stream for a label string quoted in an error (Loki adds service_name)."""

    def __init__(self, streams: list[Stream]) -> None:
        self.streams = streams
        self.by_pairs = {frozenset(s.pairs): s for s in streams}
        self.cache: dict[str, Stream | None] = {}

    def __call__(self, text: str) -> Stream | None:
        if text not in self.cache:
            self.cache[text] = self._find(parse_labels(text))
        return self.cache[text]

    def _find(self, labels: dict[str, str]) -> Stream | None:
        pairs = frozenset(labels.items())
        found = self.by_pairs.get(pairs) or self.by_pairs.get(
            frozenset((k, v) for k, v in pairs if k not in _ADDED_LABELS))
        if found is not None:
            return found
        subsets = [s for s in self.streams if frozenset(s.pairs) <= pairs]
        return subsets[0] if len(subsets) == 1 else None


def parse_labels(text: str) -> dict[str, str]:
    """``{a="1", b="x\\"y"}`` (Prometheus/Go quoting) to a dict."""
    return {k: _GO_ESCAPE.sub(_unescape, v) for k, v in _LABEL_PAIR.findall(text)}


def _unescape(m: re.Match[str]) -> str:
    esc = m.group(1)
    if esc[0] in "xuU":
        return chr(int(esc[1:], 16))
    if esc[0] in "01234567" and len(esc) == 3:
        return chr(int(esc, 8))
    return _SIMPLE_ESCAPES.get(esc, esc)


def _rfc3339_second(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


def _go_time_ns(text: str) -> int:
    """Nanoseconds of Go's ``time.Time.String()`` form: ``2026-11-26 22:17:33.249753 +0000``."""
    m = _GO_TIME.fullmatch(text)
    if m is None:
        raise ValueError(f"not a Go time: {text!r}")
    offset = timedelta(hours=int(m["hh"]), minutes=int(m["mm"])) * (1 if m["sign"] == "+" else -1)
    when = datetime.strptime(m["base"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone(offset))
    return int(when.timestamp()) * 1_000_000_000 + int(((m["frac"] or "") + "000000000")[:9])
