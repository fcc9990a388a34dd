"""Line batches: the columns a file read becomes, their buffer form, and the events they stand for."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shipper.event import Event
from shipper.lines import Item, LineBatch, _newlines, count, flatten, halve, pack_items, split_lines, unpack_items
from shipper.sinks._common.batching import split_line_batches
from shipper.sources.file.config import FileSourceConfig
from shipper.sources.file.tailer import Tailer, fingerprint
from tests.shipper.sinks.loki._corpus import POD_FILE, corpus

K8S = {"namespace": "prod", "pod_name": "api-7d9f", "container_name": "api"}


def _batch(n: int = 5, extra: dict[str, str] | None = None) -> LineBatch:
    data = b"".join(b'{"n":%d}\n' % i for i in range(n))
    return LineBatch({"source": "app", "file": "/x.log", "kubernetes": K8S}, "uid", data,
                     [i * 10 for i in range(n)], [1_700_000_000_000_000_000 + i for i in range(n)],
                     ["stdout" if i % 2 else "stderr" for i in range(n)], extra)


def test_events_are_what_the_line_path_makes() -> None:
    e = _batch(3, {"kubernetes_enrichment": "missing"}).events()[1]
    assert (e.raw, e.ts_ns, e.derived, e.record) == ('{"n":1}', 1_700_000_000_000_000_001, True, {"n": 1})
    assert list(e.meta) == ["source", "file", "kubernetes", "offset", "id", "stream", "kubernetes_enrichment"]
    assert e.meta["id"] == "uid:10" and e.meta["offset"] == 10


def test_buffer_form_round_trips_with_events_around() -> None:
    items: list[Item] = [Event({"a": 1}, "x", 5, {"source": "f"}), _batch(4), Event(None, "y", 6, {}, True),
                         _batch(2, {"k": "v"})]
    back = unpack_items(pack_items(items))
    assert count(back) == count(items) == 8
    assert [type(i) for i in back] == [type(i) for i in items]
    assert flatten(back) == flatten(items)


@pytest.mark.parametrize("field, value", [(0, []), (2, "text"), (3, b"\0" * 7), (6, b"\0" * 9), (5, [1])])
def test_a_malformed_batch_entry_is_refused(field: int, value: object) -> None:
    fields = list(_batch(1).fields())
    fields[field] = value
    with pytest.raises((ValueError, TypeError, IndexError)):
        LineBatch.from_fields(fields)


def test_a_batch_msgpack_cannot_hold_is_stored_as_its_events() -> None:
    bad = LineBatch({"source": object()}, "u", b"a\n", [0], [1], [None])
    back = unpack_items(pack_items([bad, _batch(2)]))
    assert [type(i) for i in back] == [Event, LineBatch]
    first = back[0]
    assert isinstance(first, Event) and first.meta["repaired"] == ["unpackable"]


@pytest.mark.parametrize("at", [0, 1, 3, 5])
def test_split_and_halves_keep_every_line_in_order(at: int) -> None:
    b = _batch(5)
    head, tail = b.split(at)
    assert flatten([head, tail]) == b.events()
    first, second = halve([b, Event(None, "z", 1, {}, True)], 6)
    assert flatten(first + second) == flatten([b, Event(None, "z", 1, {}, True)]) and first and second


def test_split_line_batches_respects_both_limits() -> None:
    batches = [_batch(50), _batch(7)]
    groups = list(split_line_batches(batches, 20, 10**9, lambda b: len(b.data)))
    assert [count(g) for g in groups] == [20, 20, 17]
    assert flatten([b for g in groups for b in g]) == flatten(batches)
    by_bytes = list(split_line_batches(batches, 1000, 60, lambda b: len(b.data)))
    assert all(sum(len(b.data) for b in g) <= 60 for g in by_bytes)
    assert flatten([b for g in by_bytes for b in g]) == flatten(batches)


def _read(path: Path, chunk: int, batches: bool, max_line: int = 65536) -> list[Item]:
    cfg = FileSourceConfig.model_validate({"type": "file", "include": [str(path)], "format": "cri",
                                           "max_line_bytes": max_line, "read_chunk_bytes": chunk})
    fd = os.open(path, os.O_RDONLY)
    try:
        st = os.fstat(fd)
        t = Tailer("app", str(path), fd, st.st_dev, st.st_ino, fingerprint(fd) or 0, 0, 0, cfg, "node", K8S,
                   batches=batches)
        out: list[Item] = []
        while t.read(out, 1 << 20):
            pass
        t.flush_group(out)
        return out
    finally:
        os.close(fd)


@pytest.mark.parametrize("chunk", [4096, 65536, 262144])
def test_a_read_in_batches_makes_the_events_of_the_line_path(tmp_path: Path, chunk: int,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Every kind of line of the differential corpus, read in chunks that cut lines anywhere."""
    monkeypatch.setattr(time, "time_ns", lambda: 1_234_567_890_123_456_789)
    path = tmp_path / POD_FILE
    path.write_bytes(b"".join(corpus(1_700_000_000 * 10**9)))
    batched = _read(path, chunk, True)
    plain = _read(path, chunk, False)
    assert all(type(i) is Event for i in plain)
    assert sum(isinstance(i, LineBatch) for i in batched) >= 2
    assert count([i for i in batched if isinstance(i, LineBatch)]) > 300
    assert flatten(batched) == plain


@pytest.mark.parametrize("chunk", [4096, 65536])
def test_lines_over_the_limit_cost_the_same_in_batches(tmp_path: Path, chunk: int,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """With a 300-byte limit, many lines are cut and their rest skipped (across reads too)."""
    monkeypatch.setattr(time, "time_ns", lambda: 1_234_567_890_123_456_789)
    path = tmp_path / POD_FILE
    path.write_bytes(b"".join(corpus(1_700_000_000 * 10**9)))
    batched = _read(path, chunk, True, max_line=300)
    plain = _read(path, chunk, False, max_line=300)
    assert sum(isinstance(i, LineBatch) for i in batched) >= 2
    assert any(e.meta.get("truncated") for e in plain)
    assert flatten(batched) == plain


_PIECES = [b"\n", b"\r", b"\r\n", b"a", b"\xff", b" F ", b"\x00", b"\x85", "\u2028".encode()]


@given(st.lists(st.sampled_from(_PIECES)))
def test_split_lines_is_bytes_split_with_its_last_part_apart(pieces: list[bytes]) -> None:
    data = b"".join(pieces)
    *lines, rest = data.split(b"\n")
    assert split_lines(data) == (lines, rest)
    assert _newlines(data) == data.count(b"\n")


def test_split_lines_of_nothing_and_of_whole_lines() -> None:
    assert split_lines(b"") == ([], b"")
    assert split_lines(b"\n\n") == ([b"", b""], b"")
    assert split_lines(b"a\nb") == ([b"a"], b"b")
