"""Stream labels from templates, with escaping and a cardinality guard that one pod cannot spend.

Loki indexes every distinct label set as a stream, so a label fed by an id (a request id, a pod
name that churns) multiplies streams without bound, and two labels that each stay under a limit
still multiply into each other. The guard therefore bounds, per hour:

* values per label: at most ``max_values`` distinct values sink-wide, of which one tenant (the pod
  the line came from, as the shipper derived it; else its source) brings at most
  ``max_values_per_pod`` (default 50, at most half the cap); a refused value becomes ``__overflow__``;
* streams (whole label sets): at most ``max_streams`` sink-wide, of which one tenant brings at most
  ``max_streams_per_pod`` (default 100, at most half the cap); a refused label set becomes the
  overflow stream, every label ``__overflow__`` (events counted in ``ecvi_shipper_index_overflow_total``).

A value or stream already admitted is free for everyone, so a pod logging junk spends its own
budget and overflows only its own events; the other pods' first-seen values still get in.
Rendering is cached per tenant and distinct tuple of input values, so the hot path costs a few
dict lookups; the budgets and caches start afresh every hour.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from shipper import metrics
from shipper.event import AUTHORITATIVE_ROOTS, Event, lookup_path
from shipper.templates import (
    WINDOW_SECS,
    NameGuard,
    compile_template,
    has_alternatives,
    lookup_field,
    pod_budget,
    render,
    tenant_of,
)

log = logging.getLogger("shipper.sinks.loki")

MISSING_VALUE = "unknown"
OVERFLOW_VALUE = "__overflow__"
DEFAULT_MAX_STREAMS = 5000  # Loki's own default max_global_streams_per_user
DEFAULT_VALUES_PER_POD = 50
DEFAULT_STREAMS_PER_POD = 100
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


def field_getter(path: str) -> Getter:
    """A fast :func:`lookup_path` of one template field: ``(record, meta) -> value`` (paths of one or
    two parts inline; alternatives through :func:`~shipper.templates.lookup_field`)."""
    if has_alternatives(path):
        return lambda record, meta: lookup_field(record, meta, path)
    parts = tuple(path.split("."))
    if len(parts) == 1:
        (key,) = parts

        if key in AUTHORITATIVE_ROOTS:
            return lambda record, meta: lookup_path(record, meta, parts)

        def get1(record: dict[str, Any], meta: dict[str, Any]) -> Any:
            v = record.get(key, MISSING)
            return meta.get(key) if v is MISSING else v

        return get1
    if len(parts) != 2:
        return lambda record, meta: lookup_path(record, meta, parts)
    a, b = parts
    if a in AUTHORITATIVE_ROOTS:
        return lambda record, meta: lookup_path(record, meta, parts)

    def get2(record: dict[str, Any], meta: dict[str, Any]) -> Any:
        for root in (record, meta):
            d = root.get(a)
            if isinstance(d, dict) and b in d:
                return d[b]
        return lookup_path(record, meta, parts)  # a miss: a key "a.b" may hold it

    return get2


@dataclass(slots=True)
class Stream:
    """One stream of a push request: its labels and its events, oldest first."""

    labels: str
    pairs: Pairs
    events: list[Event] = field(default_factory=list)


class CardinalityGuard:
    """Per-label and per-stream budgets, sink-wide and per tenant, over one window (see the module)."""

    def __init__(self, max_values: int, window_secs: float = WINDOW_SECS,
                 clock: Callable[[], float] = time.monotonic, sink: str = "", *,
                 max_streams: int = DEFAULT_MAX_STREAMS, max_values_per_pod: int | None = None,
                 max_streams_per_pod: int | None = None) -> None:
        self.max_values = max_values
        self.max_values_per_pod = pod_budget(max_values, max_values_per_pod, DEFAULT_VALUES_PER_POD)
        self.sink = sink
        self.window_secs = window_secs
        self._clock = clock
        self._labels: dict[str, NameGuard] = {}
        streams_per_pod = pod_budget(max_streams, max_streams_per_pod, DEFAULT_STREAMS_PER_POD)
        self.streams = NameGuard(max_streams, streams_per_pod, window_secs, clock)
        self.overflowed: dict[str, int] = {}
        """Values sent as ``__overflow__`` since start, per label (counted once per new input)."""
        self.stream_overflows = 0
        """Events sent to the overflow stream since start."""

    def expired(self) -> bool:
        """True once the current window is over (call :meth:`reset` to open the next one)."""
        return self.streams.expired()

    def reset(self) -> None:
        self.streams.reset()
        for guard in self._labels.values():
            guard.reset()

    def admit(self, label: str, value: str, tenant: Hashable | None = None) -> str:
        """``value`` if it is already known or there is room for it, else ``__overflow__``."""
        guard = self._labels.get(label)
        if guard is None:
            guard = self._labels[label] = NameGuard(self.max_values, self.max_values_per_pod, self.window_secs,
                                                    self._clock)
        why = guard.admit(value, tenant)
        if why is None:
            return value
        self.overflowed[label] = self.overflowed.get(label, 0) + 1
        metrics.LABEL_OVERFLOW.labels(self.sink, label).inc()
        if guard.first_refusal():
            log.warning(
                "loki label %r: %s; further new values are sent as %r (move high-cardinality fields to "
                "structured_metadata)", label, why, OVERFLOW_VALUE,
            )
        return OVERFLOW_VALUE

    def admit_stream(self, labels: str, tenant: Hashable | None = None) -> bool:
        """Whether the label set ``labels`` may be a stream of its own (else: the overflow stream)."""
        why = self.streams.admit(labels, tenant)
        if why is None:
            return True
        if self.streams.first_refusal():
            log.warning("loki streams: %s (label sets); further new ones go to the stream with every label %r",
                        why, OVERFLOW_VALUE)
        return False

    def count_stream_overflow(self, events: int) -> None:
        self.stream_overflows += events
        metrics.INDEX_OVERFLOW.labels(self.sink).inc(events)


class LabelRenderer:
    """Groups events into streams by their rendered labels, rendering each input tuple once per tenant.

    Two caches, both keyed by ``(tenant, values)``: ``_fast`` by the raw record values when every
    template field is a top-level string in the record (one ``map`` call per event); ``_slow`` by
    the values looked up as templates see them (record, then meta, ``str()`` of non-strings) for
    everything else.
    """

    def __init__(self, templates: dict[str, str], guard: CardinalityGuard) -> None:
        self.templates = dict(templates)
        self.guard = guard
        paths: list[str] = []
        for template in self.templates.values():
            for path in compile_template(template)[1]:
                if path not in paths:
                    paths.append(path)
        self._getters = [field_getter(p) for p in paths]
        # Top-level keys only: the fast path reads them straight from the record.
        self._names = tuple(paths) if all("." not in p and not has_alternatives(p) for p in paths) else None
        self._fast: dict[tuple[Any, ...], tuple[str, Pairs]] = {}
        self._slow: dict[tuple[Any, ...], tuple[str, Pairs]] = {}
        overflow = tuple(sorted((name, OVERFLOW_VALUE) for name in self.templates))
        self._overflow = (format_labels(overflow), overflow)

    def refresh(self) -> None:
        """Open a new cardinality window when the hour is over; called once per batch."""
        if self.guard.expired():
            self.guard.reset()
            self._fast.clear()
            self._slow.clear()

    def group(self, events: Iterable[Event]) -> list[Stream]:
        """One :class:`Stream` per distinct label set, entries sorted by time (stable for ties)."""
        self.refresh()
        events = list(events)
        by_labels: dict[str, Stream] = {}
        for e, (labels, pairs) in zip(events, self.streams_of(events), strict=True):
            s = by_labels.get(labels)
            if s is None:
                s = by_labels[labels] = Stream(labels, pairs)
            s.events.append(e)
        overflowed = by_labels.get(self.overflow_labels)
        if overflowed is not None:
            self.guard.count_stream_overflow(len(overflowed.events))
        for s in by_labels.values():
            s.events.sort(key=_TS)
        return list(by_labels.values())

    @property
    def overflow_labels(self) -> str:
        """The label string of the stream that takes what the cardinality guard turns away."""
        return self._overflow[0]

    def streams_of(self, events: list[Event]) -> list[tuple[str, Pairs]]:
        """``(label string, sorted label pairs)`` of each event (as :meth:`stream_for`)."""
        fast, names = self._fast, self._names
        out: list[tuple[str, Pairs]] = []
        for e in events:
            tenant = tenant_of(e.meta)
            if names is None:
                hit = None
            else:
                try:
                    hit = fast.get((tenant, *map(e.record.get, names)))
                except TypeError:  # an unhashable value (a dict): the slow path copes
                    hit = None
            out.append(hit or self._stream_for(e, tenant))
        return out

    def stream_for(self, event: Event) -> tuple[str, Pairs]:
        """``(label string, sorted label pairs)`` for ``event``."""
        return self._stream_for(event, tenant_of(event.meta))

    def _stream_for(self, event: Event, tenant: Hashable | None) -> tuple[str, Pairs]:
        record, meta = event.record, event.meta
        values = [get(record, meta) for get in self._getters]
        key = (tenant, *[v if v is None or type(v) is str else str(v) for v in values])
        hit = self._slow.get(key)
        if hit is None:
            if len(self._slow) >= _MAX_CACHED_KEYS:
                self._slow.clear()
            hit = self._slow[key] = self._render(event, tenant)
        if self._names is not None and all(type(v) is str for v in values):
            # All strings: an event whose record holds these very strings renders the same.
            if len(self._fast) >= _MAX_CACHED_KEYS:
                self._fast.clear()
            self._fast[key] = hit
        return hit

    def _render(self, event: Event, tenant: Hashable | None) -> tuple[str, Pairs]:
        pairs: list[tuple[str, str]] = []
        for name, template in self.templates.items():
            value = render(template, event, MISSING_VALUE) or MISSING_VALUE
            pairs.append((name, self.guard.admit(name, value, tenant)))
        pairs.sort()
        labels = format_labels(pairs)
        if not self.guard.admit_stream(labels, tenant):
            return self._overflow
        return labels, tuple(pairs)
