"""What the Loki sink reads of a line batch: only the record fields its labels and metadata use.

A line of a :class:`~shipper.lines.LineBatch` becomes a light event for the encoder: its record
holds just the top-level keys that label templates and structured-metadata paths can reach
(decoded by ``msgspec`` with every other key skipped, but validated), and its metadata is shared by
the lines of one batch and stream. Label grouping and the encoder then run unchanged, so the push
request is what the events would have made. A line whose fields need more than that (a nested
object or array, an integer beyond int64, text that does not parse) gets its full event instead.

One known difference from a full parse, on hostile input only: a number too large for a double in
a field no label or metadata reads is skipped here, while ``orjson`` refuses the whole line (which
then counts as text and gets the ``unknown`` labels). The entry line is the same either way.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

import msgspec

from shipper.event import INT64_MAX, INT64_MIN, Event
from shipper.lines import LineBatch
from shipper.templates import choices, compile_template

Scalar = str | Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)] | float | bool | None | msgspec.UnsetType
_UNSET = msgspec.UNSET
_PER_LINE_META = frozenset({"offset", "id"})  # the only metadata keys that differ between a batch's lines


def record_keys(fields: Iterable[str]) -> list[str]:
    """Every top-level record key a lookup of these template fields (alternatives included) can
    read: each path's first part and its dot-joined longer prefixes (``app.kubernetes.io/name``)."""
    keys: dict[str, None] = {}
    for field in fields:
        for c in choices(field):
            if c.path:
                for j in range(1, len(c.path) + 1):
                    keys[".".join(c.path[:j])] = None
    return list(keys)


def template_fields(templates: Iterable[str]) -> list[str]:
    """The fields of label templates."""
    return [f for t in templates for f in compile_template(t)[1]]


class LineViews:
    """Light events for the lines of line batches (see the module)."""

    def __init__(self, fields: list[str]) -> None:
        self.keys = record_keys(fields)
        roots = {c.path[0] for f in fields for c in choices(f) if c.path}
        self.per_line_meta = bool(roots & _PER_LINE_META)
        # Scalars only: instances cannot be part of a cycle, so the collector need not track them.
        struct = msgspec.defstruct("LineFields", [
            (f"f{i}", Scalar, msgspec.field(default=_UNSET, name=k)) for i, k in enumerate(self.keys)
        ], gc=False)
        self._decode = msgspec.json.Decoder(struct).decode
        self._astuple = msgspec.structs.astuple

    def views(self, batch: LineBatch) -> list[Event]:
        """One event per line of ``batch``, as the encoder needs it."""
        texts = batch.texts()
        decode, astuple = self._decode, self._astuple
        new = Event.__new__
        shared: dict[str | None, dict[str, Any]] = {}
        out: list[Event] = []
        for i, (line, text, ts, stream) in enumerate(zip(batch.lines(), texts, batch.times, batch.streams,
                                                         strict=True)):
            if self.per_line_meta:
                meta = batch.meta(i)
            else:
                meta = shared.get(stream)  # type: ignore[assignment]
                if meta is None:
                    meta = shared[stream] = batch.meta(i)
            if line[:1] == b"{":
                try:
                    values = astuple(decode(line))
                except msgspec.DecodeError:
                    values = None
                if values is None:
                    e = new(Event)  # the line's own event: its record is parsed in full when read
                    e._record, e.raw, e.ts_ns, e.meta, e.derived = None, text, ts, batch.meta(i), True
                    out.append(e)
                    continue
                out.append(self.view(values, text, ts, meta))
                continue
            e = new(Event)
            e._record, e.raw, e.ts_ns, e.meta, e.derived = {"message": text}, text, ts, meta, False
            out.append(e)
        return out

    def view(self, values: tuple[Any, ...], text: str, ts: int, meta: dict[str, Any]) -> Event:
        """The light event of a line whose decoded fields (in :attr:`keys` order) are ``values``."""
        e = Event.__new__(Event)
        e._record = {k: v for k, v in zip(self.keys, values, strict=True) if v is not _UNSET}
        e.raw, e.ts_ns, e.meta, e.derived = text, ts, meta, False
        return e
