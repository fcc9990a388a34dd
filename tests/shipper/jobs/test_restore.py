"""restore: archived lines back to events, sink configs per target, and a full replay into files."""

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from shipper.archive.manifest import build_manifest
from shipper.archive.storage.local import LocalStore
from shipper.errors import JobError
from shipper.jobs.archive import archive_day
from shipper.jobs.restore import LABELS_KEY, RestoreTarget, _Replayer, event_for, restore_day
from shipper.jobs.seal import seal_day
from shipper.sinks.elasticsearch.config import ElasticsearchSinkConfig
from shipper.sinks.loki.config import LokiSinkConfig
from shipper.sinks.s3.sink import S3Sink
from tests.shipper.sinks.s3._support import DAY0_NS, make_config, make_event

from ._support import DAY, ScriptedExporter, sample_units

NOW = datetime(2025, 2, 1, tzinfo=UTC)


def test_events_from_each_kind_of_line() -> None:
    loki = {"ts_ns": 5, "line": '{"message": "hi"}', "labels": {"service": "api"}, "metadata": {"trace_id": "t"}}
    e = event_for(loki, "loki")
    assert (e.raw, e.ts_ns, e.record) == ('{"message": "hi"}', 5, {})
    assert e.meta == {LABELS_KEY: {"service": "api"}, "trace_id": "t"}
    assert event_for(loki, "elasticsearch").record == {"message": "hi"}

    es = {"ts_ns": 7_000_000, "line": '{"@timestamp": "1970-01-01T00:00:00.007Z", "message": "m"}',
          "index": "ecvi-logs-2025.01.15", "id": "f00d:100"}
    e = event_for(es, "elasticsearch")
    assert e.id == "f00d:100" and e.record["message"] == "m" and not e.derived
    assert e.meta["_archive"] == {"index": "ecvi-logs-2025.01.15"}

    ingest = {"ts_ns": 9, "line": "raw", "id": "file:1", "meta": {"id": "file:1", "kubernetes": {"pod_name": "p"}}}
    e = event_for(ingest, "file")
    assert (e.id, e.derived, e.meta["kubernetes"]) == ("file:1", True, {"pod_name": "p"})


def _replayer(kind, spec: RestoreTarget, backend: str = "loki") -> _Replayer:
    manifest = build_manifest(DAY, "export", {"backend": backend}, [])
    return _Replayer(kind, spec, DAY, manifest, Path("/nonexistent"))


def test_loki_streams_keep_their_labels_plus_a_restore_label() -> None:
    base = LokiSinkConfig.model_validate({"type": "loki", "inputs": ["x"], "endpoint": "http://loki:3100",
                                          "tenant_id": "prod", "labels": {"app": "{{ service }}"}})
    cfg, _ = _replayer("loki", RestoreTarget("loki", base=base))._config((("level", "service"), ("trace_id",)))
    assert isinstance(cfg, LokiSinkConfig)
    assert cfg.labels == {"level": f"{{{{ {LABELS_KEY}.level }}}}", "service": f"{{{{ {LABELS_KEY}.service }}}}",
                          "restored": "2025-01-15"}
    assert cfg.structured_metadata == ["trace_id"]
    assert (cfg.endpoint, cfg.tenant_id, cfg.request.retry.max_attempts) == ("http://loki:3100", "prod", 8)
    other, _ = _replayer("loki", RestoreTarget("loki", base=base, tenant="restore", labels={"from": "archive"})
                         )._config(None)
    assert isinstance(other, LokiSinkConfig)
    assert other.labels == {"app": "{{ service }}", "from": "archive"} and other.tenant_id == "restore"


def test_elasticsearch_index_defaults() -> None:
    cfg, _ = _replayer("elasticsearch", RestoreTarget("elasticsearch", endpoint="http://es:9200"),
                       "elasticsearch")._config(None)
    assert cfg.index == "restored-{{ _archive.index }}"  # type: ignore[attr-defined]
    cfg, _ = _replayer("elasticsearch", RestoreTarget("elasticsearch", endpoint="http://es:9200"))._config(None)
    assert cfg.index == "restored-ecvi-logs-%Y.%m.%d"  # type: ignore[attr-defined]
    with pytest.raises(JobError, match="--endpoint"):
        _replayer("elasticsearch", RestoreTarget("elasticsearch"))._config(None)


def test_restore_an_export_into_a_file(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "archive")
    archive_day(ScriptedExporter(sample_units(2, 30)), store, DAY, now=NOW)
    out = tmp_path / "out" / "%Y-%m-%d.ndjson"
    result = asyncio.run(restore_day(store, DAY, RestoreTarget("file", path=str(out)), data_dir=tmp_path / "dl"))
    assert (result.objects, result.events, result.rejected) == (2, 60, 0)
    lines = (tmp_path / "out" / "2025-01-15.ndjson").read_text().splitlines()
    assert sorted(lines) == sorted(f"unit {u} line {i}" for u in range(2) for i in range(30))


def test_restore_an_ingest_archive_into_a_file(tmp_path: Path) -> None:
    sink = S3Sink("archive", make_config((tmp_path / "a").as_uri()), str(tmp_path))
    events = [make_event(i, DAY0_NS + i * 10**9) for i in range(25)]
    asyncio.run(sink.send(events))
    store = LocalStore(tmp_path / "a")
    assert seal_day(store, DAY, now=NOW).status == "sealed"
    out = tmp_path / "restored.ndjson"
    result = asyncio.run(restore_day(store, DAY, RestoreTarget("file", path=str(out)), data_dir=tmp_path / "dl"))
    assert result.events == 25
    assert out.read_text().splitlines() == [e.raw for e in events]


def test_a_tampered_object_is_not_restored(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "archive")
    archive_day(ScriptedExporter(sample_units(1, 5)), store, DAY, now=NOW)
    key = store.list("date=2025-01-15/stream=")[0].key
    (tmp_path / "archive" / key).write_bytes(b"x")
    with pytest.raises(JobError, match=key):
        asyncio.run(restore_day(store, DAY, RestoreTarget("file", path=str(tmp_path / "o")), data_dir=tmp_path))
    with pytest.raises(JobError, match="no manifest"):
        asyncio.run(restore_day(LocalStore(tmp_path / "empty"), DAY, RestoreTarget("file", path="x"),
                                data_dir=tmp_path))
    assert orjson.loads(store.get("date=2025-01-15/manifest.json"))["events"] == 5


def test_restore_sinks_lift_every_name_guard() -> None:
    """A restore replays many streams/indices from one "tenant": the per-hour guards must not fold them."""
    loki, _ = _replayer("loki", RestoreTarget("loki", endpoint="http://loki:3100"))._config((("service",), ()))
    assert isinstance(loki, LokiSinkConfig)
    assert (loki.max_label_values, loki.max_label_values_per_pod, loki.max_streams,
            loki.max_streams_per_pod) == (1_000_000,) * 4
    es, _ = _replayer("elasticsearch", RestoreTarget("elasticsearch", endpoint="http://es:9200"),
                      "elasticsearch")._config(None)
    assert isinstance(es, ElasticsearchSinkConfig)
    assert (es.max_indices, es.max_indices_per_pod) == (1_000_000, 1_000_000)


def test_rejected_lines_are_dead_lettered_and_counted_per_restore(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the shared delivery: a line the target refuses costs only itself, once per run."""
    from shipper.event import Event
    from shipper.sinks._common.outcome import SendOutcome
    from shipper.sinks.file.sink import FileSink

    class Picky(FileSink):
        async def send(self, events: list[Event]) -> SendOutcome:
            bad = [e for e in events if e.raw.endswith(" line 3")]
            out = await super().send([e for e in events if e not in bad])
            out.rejected += [(e, "refused: line 3") for e in bad]
            return out

    monkeypatch.setattr("shipper.jobs.restore.FileSink", Picky)
    store = LocalStore(tmp_path / "archive")
    archive_day(ScriptedExporter(sample_units(2, 10)), store, DAY, now=NOW)
    target = RestoreTarget("file", path=str(tmp_path / "out.ndjson"))
    for _run in range(2):  # the second run finds the first one's dead letters there
        result = asyncio.run(restore_day(store, DAY, target, data_dir=tmp_path / "dl"))
        assert (result.events, result.rejected) == (20, 2)
    [path] = result.dead_letters
    reasons = [orjson.loads(x)["reason"] for x in Path(path).read_bytes().splitlines()]
    assert reasons == ["refused: line 3"] * 4
    assert len((tmp_path / "out.ndjson").read_text().splitlines()) == 2 * 18
