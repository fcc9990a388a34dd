"""Archive, verify, restore and retention against a real Elasticsearch (the integ-test distribution).

That distribution has no ILM: ``retention apply`` installs the template without a policy (the ILM
bodies are checked against recorded answers in test_retention_es.py), and ``retention enforce``
deletes the old daily indices whose day is archived, and only those.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from elasticsearch import helpers

from shipper.jobs.exporters.base import unit_name
from shipper.sinks.elasticsearch.config import ElasticsearchSinkConfig
from shipper.sinks.elasticsearch.sink import ElasticsearchSink
from shipper.sinks.elasticsearch.template import index_template
from tests.services.es import Elasticsearch

from ._integration import cli, days_ago, make_events, on_day, read_archive, ship

pytestmark = pytest.mark.integration


@pytest.fixture
def prefix(es: Elasticsearch) -> Iterator[str]:
    name = f"ecvi-jobs-{uuid.uuid4().hex[:8]}"
    yield name
    with es.client() as client:
        found: Any = client.cat.indices(index=f"{name}-*,restored-{name}-*", format="json", h="index")
        if found:
            client.indices.delete(index=",".join(i["index"] for i in found))
        for template in (name, "restored"):
            client.options(ignore_status=(400, 404)).indices.delete_index_template(name=template)


def _docs(es: Elasticsearch, index: str) -> dict[str, dict]:
    with es.client() as client:
        client.indices.refresh(index=index)
        return {h["_id"]: h["_source"] for h in helpers.scan(client, index=index, query={"query": {"match_all": {}}})}


def test_archive_verify_tamper_restore_enforce(es: Elasticsearch, prefix: str, tmp_path: Path) -> None:
    days = [days_ago(42), days_ago(41), days_ago(40)]
    events = make_events(3000, days, prefix, ties=300)
    index = f"{prefix}-%Y.%m.%d"
    config = ElasticsearchSinkConfig.model_validate({
        "type": "elasticsearch", "inputs": ["app"], "endpoint": es.url, "index": index, "healthcheck": False,
        "batch": {"max_events": 500}})
    ship(ElasticsearchSink("es", config, str(tmp_path)), config, events, tmp_path / "ship")
    day = days[1]
    day_index = day.strftime(index)
    expected = on_day(events, day)
    original = _docs(es, day_index)
    assert len(original) == len(expected)
    archive = tmp_path / "archive"
    flags = ["--es-url", es.url, "--index", index]

    # 250 documents a page: the 300 sharing one millisecond span two pages (_shard_doc breaks the tie).
    result = cli("archive", "run", "--backend", "elasticsearch", *flags, "--day", day.isoformat(),
                 "--to", archive.as_uri(), "--page-size", "250", "--json")
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.output)["events"] == len(expected)
    lines = read_archive(archive)
    assert {r["id"]: orjson.loads(r["line"]) for r in lines} == original
    assert {r["index"] for r in lines} == {day_index}
    assert sorted(r["ts_ns"] // 1_000_000 for r in lines) == sorted(e.ts_ns // 1_000_000 for e in expected)
    assert cli("archive", "run", "--backend", "elasticsearch", *flags, "--day", day.isoformat(),
               "--to", archive.as_uri()).output.startswith(f"{day} skipped")

    ok = cli("archive", "verify", "--day", day.isoformat(), "--from", archive.as_uri(), "--backend", "elasticsearch",
             *flags, "--json")
    assert ok.exit_code == 0, ok.output
    assert orjson.loads(ok.output)["backend_counts"] == {unit_name("index", day_index): len(expected)}

    victim = next(archive.rglob("part-00000.ndjson.gz"))
    good = victim.read_bytes()
    victim.write_bytes(good[:100] + bytes([good[100] ^ 1]) + good[101:])
    bad = cli("archive", "verify", "--day", day.isoformat(), "--from", archive.as_uri())
    assert bad.exit_code == 1 and victim.relative_to(archive).as_posix() in bad.output
    victim.write_bytes(good)

    for _ in range(2):  # twice: documents keep their ids, so the second restore adds nothing
        restored = cli("archive", "restore", "--day", day.isoformat(), "--from", archive.as_uri(),
                       "--to", "elasticsearch", "--endpoint", es.url, "--data-dir", str(tmp_path / "dl"), "--json")
        assert restored.exit_code == 0, restored.output
        assert orjson.loads(restored.output)["delivered"] == len(expected)
    assert _docs(es, f"restored-{day_index}") == original

    # Retention: no ILM here, so the template goes in without a policy and enforce deletes.
    applied = cli("retention", "apply", "--backend", "elasticsearch", *flags, "--json")
    assert applied.exit_code == 0, applied.output
    with es.client() as client:
        installed = client.indices.get_index_template(name=prefix)["index_templates"][0]["index_template"]
    assert installed["_meta"]["hash"] == index_template(f"{prefix}-*")["_meta"]["hash"]
    assert installed["index_patterns"] == [f"{prefix}-*"]
    check = cli("retention", "check", "--backend", "elasticsearch", *flags, "--json")
    assert check.exit_code == 1
    drift = {f["target"] for f in orjson.loads(check.output)["findings"] if not f["ok"]}
    assert drift == {d.strftime(index) for d in days}

    enforce = cli("retention", "enforce", *flags, "--archive", archive.as_uri(), "--json")
    assert enforce.exit_code == 1  # two old indices are not archived: kept, and said so
    actions = {f["target"]: f["action"] for f in orjson.loads(enforce.output)["findings"]}
    assert actions == {days[0].strftime(index): "kept", day_index: "deleted", days[2].strftime(index): "kept"}
    with es.client() as client:
        found: Any = client.cat.indices(index=f"{prefix}-*", format="json", h="index")
    left = sorted(i["index"] for i in found)
    assert left == [days[0].strftime(index), days[2].strftime(index)]


def test_restore_of_an_index_the_cluster_lost(es: Elasticsearch, prefix: str, tmp_path: Path) -> None:
    """Past retention the index is gone; the archive brings it back (into the default restored-<index>)."""
    day = days_ago(45)
    events = make_events(400, [day], prefix, seed=5)
    index = f"{prefix}-%Y.%m.%d"
    config = ElasticsearchSinkConfig.model_validate({
        "type": "elasticsearch", "inputs": ["app"], "endpoint": es.url, "index": index, "healthcheck": False})
    ship(ElasticsearchSink("es", config, str(tmp_path)), config, events, tmp_path / "ship")
    original = _docs(es, day.strftime(index))  # refreshes the index too
    archive = (tmp_path / "a").as_uri()
    flags = ["--es-url", es.url, "--index", index]
    assert cli("archive", "run", "--backend", "elasticsearch", *flags, "--day", day.isoformat(),
               "--to", archive).exit_code == 0
    enforced = cli("retention", "enforce", *flags, "--archive", archive)
    assert enforced.exit_code == 0, enforced.output
    restored = cli("archive", "restore", "--day", day.isoformat(), "--from", archive, "--to", "elasticsearch",
                   "--endpoint", es.url, "--data-dir", str(tmp_path / "dl"))
    assert restored.exit_code == 0, restored.output
    assert _docs(es, f"restored-{day.strftime(index)}") == original == {
        e.id: orjson.loads(e.raw) | {"@timestamp": orjson.loads(e.raw)["timestamp"], "kubernetes": e.meta["kubernetes"]}
        for e in events}
