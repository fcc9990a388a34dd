"""A Python traceback from a non-JSON container, shipped from its CRI log file by the real shipper,
arrives in Loki and in Elasticsearch as one event (with ``multiline`` set on the file source)."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.factories import cri_line, cri_time
from tests.services._process import free_port
from tests.services.es import Elasticsearch
from tests.services.loki import Loki

pytestmark = pytest.mark.integration

TRACEBACK = [
    "Traceback (most recent call last):",
    '  File "/app/app/tasks/verify.py", line 41, in run',
    "    result = registry.lookup(company.registration_number)",
    "ValueError: registration number rejected",
]


def _container_log(run: str, start_ns: int) -> str:
    """stdout text and a JSON line, and on stderr an error with its traceback, one of whose lines
    the runtime split in two (``P`` then ``F``)."""
    times = iter(cri_time(start_ns + i * 1_000_000) for i in range(100))
    stderr = [f"ERROR verification {run} failed", *TRACEBACK]
    file_line = stderr[2]
    return "".join([
        cri_line(f"INFO worker {run} starting", time=next(times)),
        cri_line(stderr[0], stream="stderr", time=next(times)),
        cri_line(stderr[1], stream="stderr", time=next(times)),
        cri_line(f'{{"message": "json between {run}", "level": "INFO"}}', time=next(times)),
        cri_line(file_line[:20], "P", "stderr", next(times)),
        cri_line(file_line[20:], stream="stderr", time=next(times)),
        cri_line(stderr[3], stream="stderr", time=next(times)),
        cri_line(stderr[4], stream="stderr", time=next(times)),
        cri_line(f"INFO worker {run} done", time=next(times)),
    ])


@pytest.fixture
def shipper(tmp_path: Path, loki: Loki, es: Elasticsearch) -> Iterator[tuple[str, int]]:
    """The shipper (``ecvi-logs ship``) reading a kubelet-named CRI file into Loki and Elasticsearch."""
    run = uuid.uuid4().hex[:12]
    logs = tmp_path / "containers"
    logs.mkdir()
    start_ns = time.time_ns() - 5_000_000_000
    (logs / f"verify-5d8c_ecvi_worker-{'e' * 64}.log").write_text(_container_log(run, start_ns))
    port = free_port()
    config = tmp_path / "shipper.yaml"
    config.write_text(
        f"data_dir: {tmp_path / 'data'}\n"
        f"api: {{address: 127.0.0.1:{port}}}\n"
        "sources:\n"
        f'  app: {{type: file, include: ["{logs}/*.log"], format: cri, multiline: {{timeout_ms: 300}}}}\n'
        "sinks:\n"
        f'  loki: {{type: loki, inputs: [app], endpoint: "{loki.url}", labels: {{run: "{run}"}}, '
        "batch: {timeout_secs: 0.2}}\n"
        f'  es: {{type: elasticsearch, inputs: [app], endpoint: "{es.url}", index: "ecvi-cri-ml-{run}", '
        "batch: {timeout_secs: 0.2}}\n"
    )
    log = tmp_path / "shipper.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "shipper.cli", "ship", "--config", str(config), "--log-level", "INFO"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log.open("wb"),
    )
    try:
        yield run, start_ns
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        with es.client() as client:
            client.indices.delete(index=f"ecvi-cri-ml-{run}", ignore_unavailable=True)


def _es_messages(es: Elasticsearch, index: str, count: int, timeout: float = 60) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    docs: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        resp = httpx.get(f"{es.url}/{index}/_search", params={"size": 100, "sort": "@timestamp:asc"}, timeout=10)
        if resp.status_code == 200:
            docs = [hit["_source"] for hit in resp.json()["hits"]["hits"]]
            if len(docs) >= count:
                break
        time.sleep(0.5)
    return docs


def test_a_traceback_in_a_cri_file_arrives_as_one_event_in_loki_and_elasticsearch(
        shipper: tuple[str, int], loki: Loki, es: Elasticsearch) -> None:
    run, start_ns = shipper
    grouped = "\n".join([f"ERROR verification {run} failed", *TRACEBACK])
    expected = [f"INFO worker {run} starting", grouped, f'{{"message": "json between {run}", "level": "INFO"}}',
                f"INFO worker {run} done"]

    entries = loki.wait_for_entries(f'{{run="{run}"}}', 4, start_ns=start_ns - 60_000_000_000, timeout=60)
    lines = [line for _, line, _ in entries]
    assert sorted(lines) == sorted(expected)
    ((ts, _, labels),) = [e for e in entries if e[1] == grouped]
    assert ts == start_ns + 1_000_000  # the time of the traceback's first line
    assert labels.get("run") == run

    docs = _es_messages(es, f"ecvi-cri-ml-{run}", 4)
    assert sorted(str(d["message"]) for d in docs) == sorted(
        [f"INFO worker {run} starting", grouped, f"json between {run}", f"INFO worker {run} done"])
    (doc,) = [d for d in docs if d["message"] == grouped]
    assert isinstance(doc["kubernetes"], dict)
    assert (doc["kubernetes"]["pod_name"], doc["kubernetes"]["container_name"]) == ("verify-5d8c", "worker")
    time.sleep(1)  # nothing more arrives later: the traceback's lines are in that one event only
    assert len(_es_messages(es, f"ecvi-cri-ml-{run}", 5, timeout=2)) == 4
    assert len(loki.entries(f'{{run="{run}"}}', start_ns - 60_000_000_000, time.time_ns())) == 4
