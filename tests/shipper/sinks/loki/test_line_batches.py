"""The Loki sink's line-batch path pushes the very bodies the event path pushes.

The differential corpus is read by the real file source handing on line batches, goes through the
disk buffer's encoding, and each run of line batches is pushed twice: from the columns
(``send_lines``) and as the events they stand for (``send``), each by its own sink.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import orjson
import pytest

from shipper.event import Event
from shipper.lines import Item, LineBatch, flatten, pack_items, unpack_items
from shipper.sinks._common.outcome import TransientSinkError
from shipper.sinks.loki.config import LokiSinkConfig
from shipper.sinks.loki.direct import LinePush
from shipper.sinks.loki.sink import LokiSink
from shipper.sources.file.config import FileSourceConfig
from shipper.sources.file.source import FileSource
from tests.shipper.sinks.loki._corpus import LABELS, METADATA_SETS, POD_FILE, corpus

pytestmark = pytest.mark.anyio

OVERFLOW = b'{"level":"a","x":1e400}'  # the documented difference (shipper/sinks/loki/columns.py)
ALTERNATIVES = {**LABELS, "app": '{{ service | default(kubernetes.pod_labels.app) | default("none") }}'}


async def _read_items(root: Path) -> list[Item]:
    cfg = FileSourceConfig.model_validate({
        "type": "file", "include": [f"{root}/containers/*.log"], "format": "cri", "max_line_bytes": 65536,
        "glob_interval_secs": 0.05, "poll_interval_secs": 0.01, "read_chunk_bytes": 8192})
    got: list[Item] = []

    async def deliver(items: list[Item]) -> None:
        got.extend(unpack_items(pack_items(items)))  # as a sink reads them back from its buffer

    src = FileSource("app", cfg, None, root / "source-data", deliver_items=deliver)
    task = asyncio.create_task(src.run())
    await asyncio.sleep(1.0)
    await src.stop()
    await asyncio.wait_for(task, 5)
    src.close()
    return got


@pytest.fixture(scope="module", params=[POD_FILE, "plain.log"], ids=["pod", "no-pod-metadata"])
def items(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> list[Item]:
    root = tmp_path_factory.mktemp("line-batches")
    (root / "containers").mkdir()
    lines = [line for line in corpus(time.time_ns() - 60 * 10**9) if not _overflows(line.split(b" ", 3)[3])]
    (root / "containers" / request.param).write_bytes(b"".join(lines))
    got = asyncio.run(_read_items(root))
    assert sum(len(it) if isinstance(it, LineBatch) else 1 for it in got) == len(lines) - 4
    return got


def _overflows(payload: bytes) -> bool:
    """Whether orjson refuses ``payload`` only for a number beyond a double (the documented difference)."""
    try:
        orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        return "infinity" in str(exc)
    return False


def _runs(items: list[Item]) -> list[list[LineBatch]]:
    runs: list[list[LineBatch]] = [[]]
    for it in items:
        if isinstance(it, LineBatch):
            runs[-1].append(it)
        elif runs[-1]:
            runs.append([])
    return [r for r in runs if r]


class Recorder:
    """A Loki push endpoint that keeps every body and answers with ``status``."""

    def __init__(self, status: int = 204) -> None:
        self.bodies: list[bytes] = []
        self.status = status

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(request.content)
        return httpx.Response(self.status, text="" if self.status < 300 else "slow down")


def _sink(tmp_path: Path, labels: dict[str, str], metadata: list[str], recorder: Recorder) -> LokiSink:
    cfg = LokiSinkConfig.model_validate({"type": "loki", "inputs": ["app"], "endpoint": "http://loki.test",
                                         "labels": labels, "structured_metadata": metadata,
                                         "max_label_values": 40, "max_label_values_per_pod": 20})
    return LokiSink("loki", cfg, str(tmp_path), transport=httpx.MockTransport(recorder))


@pytest.mark.parametrize("labels", [LABELS, ALTERNATIVES, {"level": "{{ level }}"}],
                         ids=["plain", "alternatives", "one-field"])
@pytest.mark.parametrize("metadata", METADATA_SETS, ids=["default", "mixed", "message", "none"])
async def test_line_batches_push_the_bodies_their_events_push(
        items: list[Item], tmp_path: Path, labels: dict[str, str], metadata: list[str]) -> None:
    runs = _runs(items)
    assert len(runs) > 3 and sum(map(len, runs)) > 5
    columns, events = Recorder(), Recorder()
    by_columns = _sink(tmp_path, labels, metadata, columns)
    by_events = _sink(tmp_path, labels, metadata, events)
    for run in runs:
        a = await by_columns.send_lines(run)
        b = await by_events.send(flatten(run))
        assert a is not None and a.sent_bytes == b.sent_bytes and not (a.retry or a.rejected)
    assert columns.bodies == events.bodies
    assert by_columns.label_overflows == by_events.label_overflows


def test_the_corpus_reaches_both_paths(items: list[Item]) -> None:
    batched = [e for it in items if isinstance(it, LineBatch) for e in it.events()]
    alone = [it for it in items if isinstance(it, Event)]
    assert len(batched) > 300 and len(alone) > 50
    raws = [e.raw for e in batched]
    assert any(not r.startswith("{") for r in raws)  # text lines travel in batches too
    assert any(not r.isascii() for r in raws)
    assert any('"level":"a","level":"b"' in r for r in raws)
    assert any(r.startswith('{"le\\u0076el"') for r in raws)


async def test_a_number_beyond_double_in_an_unread_field_is_skipped(tmp_path: Path) -> None:
    """The one difference from a full parse: orjson refuses the line, the columns read its labels."""
    batch = LineBatch({"source": "app", "file": "/x.log"}, "u", OVERFLOW + b"\n", [0], [1_700_000_000 * 10**9],
                      ["stdout"])
    columns, events = Recorder(), Recorder()
    await _sink(tmp_path, {"level": "{{ level }}"}, [], columns).send_lines([batch])
    await _sink(tmp_path, {"level": "{{ level }}"}, [], events).send(batch.events())
    assert b'level="a"' in columns.bodies[0] or b'level=\\"a\\"' in _plain(columns.bodies[0])
    assert b'level=\\"unknown\\"' in _plain(events.bodies[0]) or b'level="unknown"' in _plain(events.bodies[0])
    assert OVERFLOW in _plain(columns.bodies[0]) and OVERFLOW in _plain(events.bodies[0])


def _plain(body: bytes) -> bytes:
    import cramjam

    return bytes(cramjam.snappy.decompress_raw(body))


async def test_a_failed_push_is_read_against_the_full_events(items: list[Item], tmp_path: Path) -> None:
    run = _runs(items)[0]
    sink = _sink(tmp_path, LABELS, [], Recorder(429))
    with pytest.raises(TransientSinkError):
        await sink.send_lines(run)


async def test_a_request_too_large_is_sent_again_as_events_in_halves(items: list[Item], tmp_path: Path) -> None:
    run = _runs(items)[0]
    n = sum(map(len, run))
    calls: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(len(request.content))
        return httpx.Response(413 if len(calls) <= 2 else 204)

    cfg = LokiSinkConfig.model_validate({"type": "loki", "inputs": ["app"], "endpoint": "http://loki.test",
                                         "labels": LABELS})
    sink = LokiSink("loki", cfg, str(tmp_path), transport=httpx.MockTransport(answer))
    outcome = await sink.send_lines(run)
    assert outcome is not None and not outcome.rejected and not outcome.retry
    # From the columns, then as events: the whole, refused again, then its two halves.
    assert len(calls) == 4 and n > 1 and calls[0] == calls[1] > max(calls[2:])


@pytest.mark.parametrize("metadata", METADATA_SETS, ids=["default", "mixed", "message", "none"])
async def test_batches_go_from_their_columns_unless_a_line_needs_its_event(
        items: list[Item], tmp_path: Path, metadata: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Which batches the request writes from columns: those of plain JSON lines (both streams of a
    container in one batch included), when no metadata field needs the record beyond its top level."""
    taken: list[tuple[LineBatch, bool]] = []
    columns = LinePush._columns

    def spy(self: LinePush, b: LineBatch, first: int, streams: dict[str, object]) -> bool:
        ok = columns(self, b, first, streams)  # type: ignore[arg-type]
        taken.append((b, ok))
        return ok

    monkeypatch.setattr(LinePush, "_columns", spy)
    sink = _sink(tmp_path, LABELS, metadata, Recorder())
    for run in _runs(items):
        assert await sink.send_lines(run) is not None
    by_columns = [b for b, ok in taken if ok]
    by_events = [b for b, ok in taken if not ok]
    record_beyond_top = any(("." in p and not p.startswith("kubernetes.")) or p == "kubernetes" for p in metadata)
    if record_beyond_top:
        assert not by_columns and by_events
    else:
        assert by_columns and by_events  # the odd lines of the corpus take the events
        assert any(len(set(b.streams)) == 2 for b in by_columns)
        assert all(line.startswith(b"{") for b in by_columns for line in b.lines())


def test_a_stream_fed_twice_orders_equal_times_by_position() -> None:
    """Lines of one batch reach a stream from two label tuples (stdout and stderr with the same
    labels): at equal times they go in the order they came, as the event path sorts them."""
    from shipper.sinks.loki.direct import _Entries

    lines, times, sms = [b"a", b"b", b"c"], [1, 5, 5], [b"", b"", b""]
    fed_twice = _Entries("{}", ())
    fed_twice.add([0, 2], lines, times, sms, 10)  # stdout: the first and the third line
    fed_twice.add([1], lines, times, sms, 10)  # stderr: the second, in the same millisecond as the third
    fed_twice.sort()
    assert (fed_twice.lines, fed_twice.positions) == ([b"a", b"b", b"c"], [10, 11, 12])
    fed_once = _Entries("{}", ())
    fed_once.add([0, 1, 2], lines, [5, 5, 1], sms, 0)
    fed_once.sort()
    assert (fed_once.lines, fed_once.times) == ([b"c", b"a", b"b"], [1, 5, 5])
