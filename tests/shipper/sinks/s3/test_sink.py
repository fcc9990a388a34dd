"""The s3 sink against a directory: partitions, deterministic names, retries, and the archive format."""

import random
import zlib
from pathlib import Path

import orjson
import pytest

from shipper.archive.storage.local import LocalStore
from shipper.errors import StorageError
from shipper.sinks._common.outcome import TransientSinkError
from shipper.sinks.s3.sink import S3Sink, object_key, partition

from ._support import DAY0_NS, HOUR_NS, make_config, make_event


def _sink(root: Path, store: LocalStore | None = None) -> S3Sink:
    return S3Sink("archive", make_config(root.as_uri()), str(root / "data"), store=store)


def _read(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in zlib.decompress(path.read_bytes(), 47).splitlines()]


@pytest.mark.anyio
async def test_partitions_by_utc_day_and_hour(tmp_path: Path) -> None:
    events = [make_event(i, DAY0_NS - HOUR_NS // 2 + i * HOUR_NS // 4) for i in range(8)]
    sink = _sink(tmp_path)
    outcome = await sink.send(events)
    assert not outcome.retry and not outcome.rejected and outcome.sent_bytes > 0
    dirs = sorted(p.parent.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.ndjson.gz"))
    assert dirs == ["date=2025-01-14/hour=23/node=node-a", "date=2025-01-15/hour=00/node=node-a",
                    "date=2025-01-15/hour=01/node=node-a"]
    total = [r for p in sorted(tmp_path.rglob("*.ndjson.gz")) for r in _read(p)]
    assert [r["ts_ns"] for r in total] == sorted(e.ts_ns for e in events)


@pytest.mark.anyio
async def test_lines_keep_the_event(tmp_path: Path) -> None:
    plain = make_event(1, DAY0_NS + 5)
    changed = make_event(2, DAY0_NS + 6)
    changed.record = {**changed.record, "added": "by a transform"}
    await _sink(tmp_path).send([plain, changed])
    (path,) = tmp_path.rglob("*.ndjson.gz")
    first, second = _read(path)
    assert first == {"ts_ns": DAY0_NS + 5, "line": plain.raw, "id": "file:100",
                     "meta": {"id": "file:100", "source": "app", "kubernetes": {"pod_name": "api-1"}}}
    assert second["record"]["added"] == "by a transform"


@pytest.mark.anyio
async def test_names_come_from_the_events_so_a_resent_batch_overwrites_itself(tmp_path: Path) -> None:
    events = [make_event(i, DAY0_NS + i * 1000) for i in range(50)]
    shuffled = events[:]
    random.Random(3).shuffle(shuffled)
    sink = _sink(tmp_path)
    await sink.send(events)
    await sink.send(shuffled)
    assert len(list(tmp_path.rglob("*.ndjson.gz"))) == 1
    await sink.send(events[:10])  # a different batch: a different object
    assert len(list(tmp_path.rglob("*.ndjson.gz"))) == 2
    (day, hour, group), = partition(events)
    name = object_key("node-a", day, hour, group)
    assert name.startswith(f"date=2025-01-15/hour=00/node=node-a/{DAY0_NS:019d}-")
    assert name == object_key("node-a", day, hour, partition(shuffled)[0][2])


class _FailingStore(LocalStore):
    def __init__(self, root: Path, fail: set[int], transient: bool) -> None:
        super().__init__(root)
        self.fail, self.transient, self.calls = fail, transient, 0

    def put(self, key: str, data: bytes, sha256: str) -> None:
        self.calls += 1
        if self.calls in self.fail:
            raise StorageError(f"{key}: refused", transient=self.transient)
        super().put(key, data, sha256)


@pytest.mark.anyio
async def test_a_transient_failure_retries_that_partition_and_the_rest(tmp_path: Path) -> None:
    events = [make_event(i, DAY0_NS + i * HOUR_NS) for i in range(3)]
    sink = _sink(tmp_path, _FailingStore(tmp_path, {2}, transient=True))
    outcome = await sink.send(events)
    assert [e.ts_ns for e in outcome.retry] == [events[1].ts_ns, events[2].ts_ns]
    assert not outcome.rejected
    first = _sink(tmp_path, _FailingStore(tmp_path, {1}, transient=True))
    with pytest.raises(TransientSinkError):
        await first.send(events)


@pytest.mark.anyio
async def test_a_permanent_failure_rejects_only_that_partition(tmp_path: Path) -> None:
    events = [make_event(i, DAY0_NS + i * HOUR_NS) for i in range(3)]
    outcome = await _sink(tmp_path, _FailingStore(tmp_path, {2}, transient=False)).send(events)
    assert [e.ts_ns for e, _ in outcome.rejected] == [events[1].ts_ns]
    assert "refused" in outcome.rejected[0][1]
    assert not outcome.retry and len(list(tmp_path.rglob("*.ndjson.gz"))) == 2


@pytest.mark.anyio
async def test_healthcheck_and_size(tmp_path: Path) -> None:
    sink = S3Sink("archive", make_config((tmp_path / "new").as_uri()), str(tmp_path))
    await sink.healthcheck()
    assert (tmp_path / "new").is_dir()
    assert sink.event_size(make_event(1, DAY0_NS)) > len(make_event(1, DAY0_NS).raw)
    await sink.close()


class _BrokenStore(LocalStore):
    """Stores the first object, then fails with a bug of its own (not a StorageError)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.calls = 0

    def put(self, key: str, data: bytes, sha256: str) -> None:
        self.calls += 1
        if self.calls > 1:
            raise KeyError("a bug")
        super().put(key, data, sha256)


@pytest.mark.anyio
async def test_an_unexpected_error_after_a_stored_object_keeps_it(tmp_path: Path) -> None:
    events = [make_event(i, DAY0_NS + i * HOUR_NS) for i in range(3)]
    sink = _sink(tmp_path, _BrokenStore(tmp_path))
    outcome = await sink.send(events)
    assert [e.ts_ns for e in outcome.retry] == [events[1].ts_ns, events[2].ts_ns]
    assert outcome.reason == "unexpected KeyError: 'a bug'" and not outcome.rejected
    assert len(list(tmp_path.rglob("*.ndjson.gz"))) == 1
    with pytest.raises(KeyError):  # the first call: the delivery's bounded handling sees it
        await sink.send(events[1:])
