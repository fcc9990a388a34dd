"""A protobuf push request straight from line batches: no event per line.

Each line's label and structured-metadata fields are decoded (``msgspec``, every other key
skipped but validated) into a tuple; the labels of each distinct label tuple are rendered once per
batch from one light event (as :mod:`~shipper.sinks.loki.columns` makes them), and the entries are
written from the columns: the line's bytes, its time, its metadata pairs. The request is the one
the events would have made, byte for byte (``tests/shipper/sinks/loki/test_line_batches.py``).

A batch takes its lines' light events instead (same request, more work) when a line is not a JSON
object of scalars, a label field holds anything but a string, or a metadata field needs the record
beyond its top level.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import compress, islice, repeat
from operator import eq, gt, itemgetter
from typing import Any

import msgspec

from shipper.lines import LineBatch
from shipper.sinks.loki.columns import LineViews, Scalar, record_keys
from shipper.sinks.loki.encoder import MetadataField, ProtobufEncoder, PushRequest
from shipper.sinks.loki.labels import LabelRenderer, Pairs

_UNSET = msgspec.UNSET
_LabelScalar = str | None | msgspec.UnsetType  # one type only: equal tuples render equal labels
_astuple = msgspec.structs.astuple
_FEW_KEYS = 4  # label tuples in a batch up to which lines are grouped by a pass per tuple


class _Entries:
    """The columns of one stream of a request, in the order its lines came."""

    __slots__ = ("adds", "labels", "lines", "pairs", "positions", "sms", "times")

    def __init__(self, labels: str, pairs: Pairs) -> None:
        self.labels, self.pairs = labels, pairs
        self.adds = 0  # calls of add: lines from one call are in their order already
        self.lines: list[bytes] = []
        self.times: list[int] = []
        self.sms: list[bytes] = []
        self.positions: list[int] = []  # each line's position among the request's lines

    def add(self, idx: list[int], lines: list[bytes], times: list[int], sms: list[bytes], first: int) -> None:
        if len(idx) == len(lines):
            self.lines += lines
            self.times += times
            self.sms += sms
        elif len(idx) > 1:
            pick = itemgetter(*idx)  # a tuple of the picked items, in C
            self.lines += pick(lines)
            self.times += pick(times)
            self.sms += pick(sms)
        else:
            (i,) = idx
            self.lines.append(lines[i])
            self.times.append(times[i])
            self.sms.append(sms[i])
        self.positions += map(first.__add__, idx)
        self.adds += 1

    def sort(self) -> None:
        """Oldest first, lines of equal time in the order they came (as the event path sorts).

        Lines of one batch reach a stream by label tuple (two tuples can share labels, e.g. the
        same labels on stdout and stderr), so they are put back in their order too."""
        times, positions = self.times, self.positions
        if any(map(gt, times, islice(times, 1, None))) \
                or (self.adds > 1 and any(map(gt, positions, islice(positions, 1, None)))):
            order = sorted(range(len(times)), key=lambda i: (times[i], positions[i]))
            self.lines = [self.lines[i] for i in order]
            self.times = [times[i] for i in order]
            self.sms = [self.sms[i] for i in order]
            self.positions = [self.positions[i] for i in order]


class LinePush:
    """Builds push requests from line batches (see the module)."""

    def __init__(self, label_fields: list[str], views: LineViews, labels: LabelRenderer,
                 encoder: ProtobufEncoder) -> None:
        self.views, self.labels, self.encoder = views, labels, encoder
        keys = views.keys
        label_keys = set(record_keys(label_fields))
        struct = msgspec.defstruct("PushFields", [
            (f"f{i}", _LabelScalar if k in label_keys else Scalar, msgspec.field(default=_UNSET, name=k))
            for i, k in enumerate(keys)
        ], gc=False)  # scalars only: no cycle to collect
        self._decode = msgspec.json.Decoder(struct).decode
        # Lines are read as tuples of their fields (in ``keys`` order): an index is cheaper than an
        # attribute lookup on the struct.
        at = [keys.index(k) for k in keys if k in label_keys]
        self._label_key: Callable[[Any], Any] = itemgetter(*at) if at else (lambda _: ())
        self._metadata: list[tuple[Any, Callable[[Any], Any] | None]] = [
            (f, itemgetter(keys.index(f.key)) if f.key is not None else None)
            for f in encoder.metadata.fields
        ]
        self._roots = {f.name: (itemgetter(keys.index(f.root)), itemgetter(keys.index(f"{f.root}.{f.sub}")))
                       for f in encoder.metadata.fields if f.root is not None}

    def request(self, batches: list[LineBatch]) -> tuple[PushRequest, list[_Entries]]:
        """The push request of ``batches`` (its ``streams`` left empty) and its streams' columns;
        each line's position counts the lines of all batches, in order."""
        self.labels.refresh()
        streams: dict[str, _Entries] = {}
        first = 0
        for b in batches:
            if not self._columns(b, first, streams):
                self._events(b, first, streams)
            first += len(b)
        overflowed = streams.get(self.labels.overflow_labels)
        if overflowed is not None:
            self.labels.guard.count_stream_overflow(len(overflowed.lines))
        pieces: list[bytes] = []
        for s in streams.values():
            s.sort()
            self.encoder.write_stream(pieces, s.labels, s.lines, s.times, s.sms)
        return self.encoder.request(b"".join(pieces), []), list(streams.values())

    def _columns(self, b: LineBatch, first: int, streams: dict[str, _Entries]) -> bool:
        """Add a batch's lines from their columns; False (nothing added) if it needs its events."""
        lines = b.lines()
        try:
            objs = list(map(_astuple, map(self._decode, lines)))
        except (msgspec.DecodeError, msgspec.ValidationError):
            return False
        names = dict.fromkeys(b.streams)
        metas = {name: b.meta(b.streams.index(name)) for name in names}
        n = len(lines)
        if len(names) == 1:
            (meta,) = metas.values()
            keys: list[Any] = list(map(self._label_key, objs))
            sms = self._metadata_column(objs, meta, n)
            if sms is None:
                return False
        else:
            keys = list(zip(b.streams, map(self._label_key, objs), strict=True))
            sms = [b""] * n
            for name, meta in metas.items():
                idx = [i for i, s in enumerate(b.streams) if s == name]
                part = self._metadata_column([objs[i] for i in idx], meta, len(idx))
                if part is None:
                    return False
                for i, sm in zip(idx, part, strict=True):
                    sms[i] = sm
        distinct = dict.fromkeys(keys)
        buckets: dict[Any, list[int]] = {}
        if len(distinct) == 1:
            buckets[keys[0]] = list(range(n))
        elif len(distinct) <= _FEW_KEYS:  # a pass per key, in C, beats a Python step per line
            for k in distinct:
                buckets[k] = list(compress(range(n), map(eq, keys, repeat(k))))
        else:
            for i, k in enumerate(keys):
                buckets.setdefault(k, []).append(i)
        times = b.times
        for idx in buckets.values():
            i = idx[0]
            view = self.views.view(objs[i], lines[i].decode(), times[i], metas[b.streams[i]])
            labels, pairs = self.labels.stream_for(view)
            s = streams.get(labels)
            if s is None:
                s = streams[labels] = _Entries(labels, pairs)
            s.add(idx, lines, times, sms, first)
        return True

    def _metadata_column(self, objs: list[Any], meta: dict[str, Any], n: int) -> list[bytes] | None:
        """Each line's structured-metadata wire bytes, or None if a field needs the records."""
        columns: list[list[bytes]] = []
        for field, get in self._metadata:
            if get is not None:
                column = self._values_column(field, list(map(get, objs)), meta.get(field.key))
            elif (pair := field.meta_pair(meta)) is not None:
                column = [pair] * n
            elif field.root is not None and field.root not in meta:
                # No derived root in the metadata: the record's "root.sub" key, else the metadata's
                # (as the event path reads it), provided no line has an object at the root.
                root_of, joined_of = self._roots[field.name]
                if not {_UNSET, None}.issuperset(map(root_of, objs)):
                    return None
                column = self._values_column(field, list(map(joined_of, objs)), meta.get(f"{field.root}.{field.sub}"))
            else:
                return None
            if column[0] or column.count(b"") < n:  # a field no line has adds nothing
                columns.append(column)
        if not columns:
            return [b""] * n
        if len(columns) == 1:
            return columns[0]
        return list(map(b"".join, zip(*columns, strict=True)))

    @staticmethod
    def _values_column(field: MetadataField, values: list[Any], fallback: Any) -> list[bytes]:
        """A field's wire bytes from its record values, ``fallback`` (from the metadata) where unset."""
        unset = values.count(_UNSET)
        if unset == len(values):
            return [field.pair(fallback)] * unset
        if unset:
            values = [fallback if v is _UNSET else v for v in values]
        return field.encode(values)

    def _events(self, b: LineBatch, first: int, streams: dict[str, _Entries]) -> None:
        """Add a batch's lines through their light events (the same entries, more work)."""
        events = self.views.views(b)
        sms = self.encoder.metadata.encode_all(events) if self.encoder.metadata.names else [b""] * len(events)
        lines = b.lines()
        for i, (labels, pairs) in enumerate(self.labels.streams_of(events)):
            s = streams.get(labels)
            if s is None:
                s = streams[labels] = _Entries(labels, pairs)
            s.add([i], lines, b.times, sms, first)
