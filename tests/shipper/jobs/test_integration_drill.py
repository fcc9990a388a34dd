"""archive drill against a real Elasticsearch: a scratch index, read back, compared, deleted."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
import pytest

from shipper.sinks.elasticsearch.config import ElasticsearchSinkConfig
from shipper.sinks.elasticsearch.sink import ElasticsearchSink
from tests.services.es import Elasticsearch

from ._integration import cli, days_ago, make_events, on_day, ship

pytestmark = pytest.mark.integration


def test_drill_restores_into_a_scratch_index_and_removes_it(es: Elasticsearch, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:8]
    day = days_ago(3)
    index = f"ecvi-drill-src-{run}-%Y.%m.%d"
    config = ElasticsearchSinkConfig.model_validate({
        "type": "elasticsearch", "inputs": ["app"], "endpoint": es.url, "index": index, "healthcheck": False})
    events = make_events(600, [day], run, ties=50)
    ship(ElasticsearchSink("es", config, str(tmp_path)), config, events, tmp_path / "ship")
    with es.client() as client:
        client.indices.refresh(index=day.strftime(index))
    archive = tmp_path / "archive"
    flags = ["--es-url", es.url, "--index", index]
    archived = cli("archive", "run", "--backend", "elasticsearch", *flags, "--day", day.isoformat(),
                   "--to", archive.as_uri())
    assert archived.exit_code == 0, archived.output
    try:
        result = cli("archive", "drill", "--day", day.isoformat(), "--from", archive.as_uri(), "--to",
                     "elasticsearch", "--scratch-url", es.url, "--backend", "elasticsearch", *flags, "--json")
        assert result.exit_code == 0, result.output
        doc = orjson.loads(result.output)
        n = len(on_day(events, day))
        assert (doc["archived"], doc["restored"], doc["read_back"], doc["backend"]) == (n, n, n, n)
        with es.client() as client:
            scratch = doc["target"].removeprefix("index ")
            assert scratch.startswith("ecvi-drill-") and not client.indices.exists(index=scratch)
            assert not client.indices.exists_index_template(name=scratch)
        for_file = cli("archive", "drill", "--day", day.isoformat(), "--from", archive.as_uri())
        assert for_file.exit_code == 0 and f"{n} read back" in for_file.output
    finally:
        with es.client() as client:
            client.options(ignore_status=(400, 404)).indices.delete(index=f"ecvi-drill-*{run}*")
            client.options(ignore_status=(400, 404)).indices.delete_index_template(name=f"ecvi-drill-src-{run}")
