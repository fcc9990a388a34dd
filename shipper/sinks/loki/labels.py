"""Stream labels from templates, with escaping and a per-label cardinality guard.

Loki indexes every distinct label set as a stream, so a label fed by an id (a request id, a pod
name that churns) multiplies streams without bound. The guard lets each label take at most
``max_label_values`` distinct values per hour; past that, new values become ``__overflow__``.
Rendering is cached per distinct tuple of input values, so the hot path costs a few dict lookups.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from shipper import metrics
from shipper.event import AUTHORITATIVE_ROOTS, Event, lookup_path
from shipper.templates import _compile, render

log = logging.getLogger("shipper.sinks.loki")

MISSING_VALUE = "unknown"
OVERFLOW_VALUE = "__overflow__"
WINDOW_SECS = 3600.0
# Past this many distinct input tuples a render cache is dropped and rebuilt: inputs that
# overflow all map to the same labels, so the cache must not grow with them.
_MAX_CACHED_KEYS = 100_000

_ESCAPES = {ord("\\"): "\\\\", ord('"'): '\\"', ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"}
_ESCAPES.update({c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F] if c not in _ESCAPES})
_TS = attrgetter("ts_ns")

MISSING: Any = object()
Pairs = tuple[tuple[str, str], ...]
Getter = Callable[[dict[str, Any], dict[str, Any]], Any]


def escape_label_value(value: str) -> str:
    """Escape a value for a double-quoted label value in Loki's (PromQL) label syntax."""
    return value.translate(_ESCAPES)


def format_labels(pairs: Iterable[tuple[str, str]]) -> str:
    """``{a="1", b="2"}`` with names sorted, the form Loki parses (and prints back in errors)."""
    return "{" + ", ".join(f'{k}="{escape_label_value(v)}"' for k, v in sorted(pairs)) + "}"


lookup = lookup_path  # the same answer as ``Event.get`` for a pre-split dotted path


def field_getter(path: str) -> Getter:
    """A fast :func:`lookup` of one path: ``(record, meta) -> value`` (paths of one or two parts)."""
    parts = tuple(path.split("."))
    if len(parts) == 1:
        (key,) = parts

        if key in AUTHORITATIVE_ROOTS:
            return lambda record, meta: lookup(record, meta, parts)

        def get1(record: dict[str, Any], meta: dict[str, Any]) -> Any:
            v = record.get(key, MISSING)
            return meta.get(key) if v is MISSING else v

        return get1
    if len(parts) != 2:
        return lambda record, meta: lookup(record, meta, parts)
    a, b = parts
    if a in AUTHORITATIVE_ROOTS:
        return lambda record, meta: lookup(record, meta, parts)

    def get2(record: dict[str, Any], meta: dict[str, Any]) -> Any:
        for root in (record, meta):
            d = root.get(a)
            if isinstance(d, dict) and b in d:
                return d[b]
        return None

    return get2


@dataclass(slots=True)
class Stream:
    """One stream of a push request: its labels and its events, oldest first."""

    labels: str
    pairs: Pairs
    events: list[Event] = field(default_factory=list)


class CardinalityGuard:
    """Admits at most ``max_values`` distinct values per label per window; the rest overflow."""

    def __init__(self, max_values: int, window_secs: float = WINDOW_SECS,
                 clock: Callable[[], float] = time.monotonic, sink: str = "") -> None:
        self.max_values = max_values
        self.sink = sink
        self.window_secs = window_secs
        self._clock = clock
        self._window_start = clock()
        self._seen: dict[str, set[str]] = {}
        self._warned: set[str] = set()
        self.overflowed: dict[str, int] = {}
        """Values sent as ``__overflow__`` since start, per label (counted once per new input)."""

    def expired(self) -> bool:
        """True once the current window is over (call :meth:`reset` to open the next one)."""
        return self._clock() - self._window_start >= self.window_secs

    def reset(self) -> None:
        self._window_start = self._clock()
        self._seen.clear()
        self._warned.clear()

    def admit(self, label: str, value: str) -> str:
        """``value`` if it is already known or there is room for it, else ``__overflow__``."""
        seen = self._seen.setdefault(label, set())
        if value in seen:
            return value
        if len(seen) < self.max_values:
            seen.add(value)
            return value
        self.overflowed[label] = self.overflowed.get(label, 0) + 1
        metrics.LABEL_OVERFLOW.labels(self.sink, label).inc()
        if label not in self._warned:
            self._warned.add(label)
            log.warning(
                "loki label %r has more than %d distinct values this hour; further values are sent "
                "as %r (move high-cardinality fields to structured_metadata)",
                label, self.max_values, OVERFLOW_VALUE,
            )
        return OVERFLOW_VALUE


class LabelRenderer:
    """Groups events into streams by their rendered labels, rendering each input tuple once.

    Two caches: ``_fast`` is keyed by the raw record values when every template field is a
    top-level string in the record (one ``map`` call per event); ``_slow`` by the values looked up
    as templates see them (record, then meta, ``str()`` of non-strings) for everything else.
    """

    def __init__(self, templates: dict[str, str], guard: CardinalityGuard) -> None:
        self.templates = dict(templates)
        self.guard = guard
        paths: list[str] = []
        for template in self.templates.values():
            for path in _compile(template)[1]:
                if path not in paths:
                    paths.append(path)
        self._getters = [field_getter(p) for p in paths]
        self._names = tuple(paths) if all("." not in p for p in paths) else None
        self._fast: dict[tuple[Any, ...], tuple[str, Pairs]] = {}
        self._slow: dict[tuple[str | None, ...], tuple[str, Pairs]] = {}

    def refresh(self) -> None:
        """Open a new cardinality window when the hour is over; called once per batch."""
        if self.guard.expired():
            self.guard.reset()
            self._fast.clear()
            self._slow.clear()

    def group(self, events: Iterable[Event]) -> list[Stream]:
        """One :class:`Stream` per distinct label set, entries sorted by time (stable for ties)."""
        self.refresh()
        by_labels: dict[str, Stream] = {}
        fast, names = self._fast, self._names
        for e in events:
            if names is None:
                hit = None
            else:
                try:
                    hit = fast.get(tuple(map(e.record.get, names)))
                except TypeError:  # an unhashable value (a dict): the slow path copes
                    hit = None
            labels, pairs = hit or self.stream_for(e)
            s = by_labels.get(labels)
            if s is None:
                s = by_labels[labels] = Stream(labels, pairs)
            s.events.append(e)
        for s in by_labels.values():
            s.events.sort(key=_TS)
        return list(by_labels.values())

    def stream_for(self, event: Event) -> tuple[str, Pairs]:
        """``(label string, sorted label pairs)`` for ``event``."""
        record, meta = event.record, event.meta
        values = [get(record, meta) for get in self._getters]
        key = tuple([v if v is None or type(v) is str else str(v) for v in values])
        hit = self._slow.get(key)
        if hit is None:
            if len(self._slow) >= _MAX_CACHED_KEYS:
                self._slow.clear()
            hit = self._slow[key] = self._render(event)
        if self._names is not None and all(type(v) is str for v in values):
            # All strings: an event whose record holds these very strings renders the same.
            if len(self._fast) >= _MAX_CACHED_KEYS:
                self._fast.clear()
            self._fast[key] = hit
        return hit

    def _render(self, event: Event) -> tuple[str, Pairs]:
        pairs: list[tuple[str, str]] = []
        for name, template in self.templates.items():
            value = render(template, event, MISSING_VALUE) or MISSING_VALUE
            pairs.append((name, self.guard.admit(name, value)))
        pairs.sort()
        return format_labels(pairs), tuple(pairs)
