"""Index names from the ``index`` setting: strftime over the event's time, templated parts cleaned, bounded.

Elasticsearch's rules for index (and data stream) names, from the create index API reference
("Index name limitations"): lowercase only; none of ``\\ / * ? " < > |``, space, ``,`` or ``#``
(nor ``:`` since 7.0); not starting with ``-``, ``_`` or ``+``; not ``.`` or ``..``; at most 255 bytes
of UTF-8; names starting with ``.`` are for hidden and system indices (``.kibana_1``), so a line
must never pick one. The operator's literal text is checked once, by the config; only the values
of ``{{ field }}`` parts are cleaned here, so a valid prefix such as ``app-`` stays exactly as written.

Each distinct tuple of field values is a new index (and shards, for a day), so a :class:`NameGuard`
lets at most ``max_indices`` tuples per hour through, of which one pod brings at most
``max_indices_per_pod`` (default 10, at most half the cap); later ones go to the overflow index,
the template with every field ``__overflow__`` (``app-__overflow__-2025.01.01``), counted in
``ecvi_shipper_index_overflow_total``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Hashable
from functools import lru_cache
from typing import Any

from shipper import metrics
from shipper.event import Event
from shipper.templates import NameGuard, compile_template, is_template, lookup_field, pod_budget, tenant_of

log = logging.getLogger("shipper.sinks.elasticsearch")

MAX_INDEX_BYTES = 255
INVALID_INDEX_CHARS = re.compile(r'[\\/*?"<>| ,#:\x00-\x1f\x7f]')
INVALID_LEAD = "-_+."
OVERFLOW_VALUE = "__overflow__"
MISSING_VALUE = "unknown"
DEFAULT_MAX_INDICES = 100
DEFAULT_INDICES_PER_POD = 10

_DATE_ONLY = set("YmdyjFbBhaAGgCVUWuwD%")
_DIRECTIVE = re.compile(r"%(.)")
# Past this many distinct inputs the name cache is rebuilt: refused inputs all share one name.
_MAX_CACHED_KEYS = 100_000


def _granularity(pattern: str) -> int:
    """Seconds over which ``strftime(pattern)`` cannot change (a day for date-only patterns)."""
    directives = set(_DIRECTIVE.findall(pattern))
    if directives <= _DATE_ONLY:
        return 86_400
    if directives <= _DATE_ONLY | {"H", "I", "p"}:
        return 3_600
    return 1


@lru_cache(maxsize=4096)
def _strftime_bucket(pattern: str, bucket: int, granularity: int) -> str:
    return time.strftime(pattern, time.gmtime(bucket * granularity))


@lru_cache(maxsize=4096)
def _literal(text: str) -> str:
    # Literal text passed the config's check; strftime output (``%b`` is "Jan", ``%c`` holds spaces
    # and colons) is lowered and cleaned like a field value.
    return INVALID_INDEX_CHARS.sub("_", text.lower())


def clean_index_value(value: str) -> str:
    """A field value fit to be part of an index name: lower case, forbidden characters as ``_``."""
    if not value.isascii():
        value = value.encode("utf-8", "replace").decode("utf-8")  # lone surrogates cannot be sent
    return INVALID_INDEX_CHARS.sub("_", value.lower())


def _cut_utf8(text: str, max_bytes: int) -> str:
    data = text.encode("utf-8")
    return text if len(data) <= max_bytes else data[:max_bytes].decode("utf-8", "ignore")


def assemble_index_name(literals: list[str], values: list[str]) -> str:
    """The literal parts with the cleaned ``values`` between them, valid whatever the values were.

    Each value gets an equal share of the bytes the literals leave; a value that starts the name
    loses leading ``- _ + .`` (or becomes ``unknown``), so no line names a hidden or system index.
    """
    room = MAX_INDEX_BYTES - sum(len(lit.encode("utf-8")) for lit in literals)
    share = max(1, room // max(1, len(values)))
    out = [literals[0]]
    at_start = not literals[0]
    for value, literal in zip(values, literals[1:], strict=True):
        value = _cut_utf8(clean_index_value(value), share)
        if at_start:
            value = value.lstrip(INVALID_LEAD) or MISSING_VALUE
            at_start = False
        out.append(value)
        out.append(literal)
    return _cut_utf8("".join(out), MAX_INDEX_BYTES)


class IndexNamer:
    """The index each event goes to, for one sink's ``index`` setting (daily indices or a data stream)."""

    def __init__(self, pattern: str, data_stream: bool = False, *, max_indices: int = DEFAULT_MAX_INDICES,
                 max_indices_per_pod: int | None = None, sink: str = "",
                 guard: NameGuard | None = None) -> None:
        self.pattern = pattern
        self.sink = sink
        self._dated = "%" in pattern and not data_stream
        self._templated = is_template(pattern)
        self._granularity = _granularity(pattern) if self._dated else 1
        self._fields = compile_template(pattern)[1]
        if guard is None:
            guard = NameGuard(max_indices, pod_budget(max_indices, max_indices_per_pod, DEFAULT_INDICES_PER_POD))
        self.guard = guard
        self._names: dict[tuple[Any, ...], tuple[str, bool]] = {}
        self.overflowed = 0
        """Events sent to the overflow index since start."""

    def refresh(self) -> None:
        """Open a new window when the hour is over; called once per batch."""
        if self.guard.expired():
            self.guard.reset()
            self._names.clear()

    def index_for(self, event: Event) -> str:
        """The index (or data stream) ``event`` goes to."""
        name = self.pattern
        if self._dated:
            g = self._granularity
            name = _strftime_bucket(name, event.ts_ns // 1_000_000_000 // g, g)
        if not self._templated:
            return _literal(name)
        tenant = tenant_of(event.meta)
        record, meta = event.record, event.meta
        values = tuple([_text(lookup_field(record, meta, f)) for f in self._fields])
        key = (name, tenant, values)
        hit = self._names.get(key)
        if hit is None:
            if len(self._names) >= _MAX_CACHED_KEYS:
                self._names.clear()
            hit = self._names[key] = self._name(name, tenant, values)
        index, overflowed = hit
        if overflowed:
            self.overflowed += 1
            metrics.INDEX_OVERFLOW.labels(self.sink).inc()
        return index

    def _name(self, pattern: str, tenant: Hashable | None, values: tuple[str, ...]) -> tuple[str, bool]:
        literals = [_literal(lit) for lit in compile_template(pattern)[0]]
        index = assemble_index_name(literals, list(values))
        # The guard counts the templated part only: the same service on the next day is no new name.
        why = self.guard.admit(tuple(clean_index_value(v) for v in values), tenant)
        if why is None:
            return index, False
        overflow = assemble_index_name(literals, [OVERFLOW_VALUE] * len(values))
        if self.guard.first_refusal():
            log.warning("sink %s: index %r not created: %s; such events go to %r this hour",
                        self.sink, index, why, overflow)
        return overflow, True


def _text(value: Any) -> str:
    return "" if value is None else value if type(value) is str else str(value)
