"""Backend outages: a backend stopped for a while, or answering 429 / 503, during a run.
Nothing is lost, memory stays bounded, delivery resumes by itself, metrics show the retries."""

from __future__ import annotations

import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.reliability._backends import es_numbers, loki_numbers
from tests.reliability._harness import Shipper, Summary, free_port, scaled, wait_for
from tests.reliability._proxy import FaultProxy
from tests.reliability.test_crash import SteadyWriter

pytestmark = [pytest.mark.reliability, pytest.mark.integration]


def _metric(port: int, name: str, sink: str) -> float:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
               if line.startswith(name) and f'sink="{sink}"' in line)


def _config(tmp: Path, sink: str, run: str) -> str:
    return f"""
data_dir: {tmp}/data
api: {{address: "127.0.0.1:0"}}
sources:
  app: {{type: file, include: ["{tmp}/logs/app.log*"], format: cri, glob_interval_secs: 0.2}}
transforms:
  tag: {{type: add_fields, inputs: [app], fields: {{run: "{run}"}}}}
sinks:
  {sink}
"""


def _loki_sink(url: str) -> str:
    return (f'loki: {{type: loki, inputs: [tag], endpoint: "{url}", labels: {{service: "{{{{ service }}}}", '
            f'run: "{{{{ run }}}}"}}, batch: {{max_events: 500, timeout_secs: 0.2}}, '
            f"request: {{retry: {{max_backoff_secs: 5}}}}}}")


def _es_sink(url: str, index: str) -> str:
    return (f'es: {{type: elasticsearch, inputs: [tag], endpoint: "{url}", index: "{index}-%Y.%m.%d", '
            f"batch: {{max_events: 500, timeout_secs: 0.2}}, request: {{retry: {{max_backoff_secs: 5}}}}}}")


@pytest.mark.parametrize("backend", ["loki", "elasticsearch"])
def test_backend_stopped_then_back(tmp_path: Path, backend: str, loki, es) -> None:  # type: ignore[no-untyped-def]
    run = uuid.uuid4().hex[:8]
    service = loki if backend == "loki" else es
    sink = "loki" if backend == "loki" else "es"
    index = f"outage-{run}"
    sink_yaml = _loki_sink(loki.url) if backend == "loki" else _es_sink(es.url, index)
    start_ns = time.time_ns() - 60_000_000_000

    def during() -> None:
        service.stop()
        time.sleep(scaled(30, 60))
        service.start()

    def count():  # type: ignore[no-untyped-def]
        if backend == "loki":
            return loki_numbers(loki.url, f'{{run="{run}"}}', start_ns, time.time_ns() + 60_000_000_000)
        return es_numbers(es.url, f"{index}-*")

    cfg = _config(tmp_path, sink_yaml, run)
    _run_with_config(tmp_path, cfg, sink, during, count, f"outage_stopped_{backend}")


@pytest.mark.parametrize("fault", ["429", "503"])
def test_backend_answering_errors(tmp_path: Path, fault: str, loki) -> None:  # type: ignore[no-untyped-def]
    run = uuid.uuid4().hex[:8]
    proxy = FaultProxy(loki.url)
    start_ns = time.time_ns() - 60_000_000_000

    def during() -> None:
        proxy.mode = fault
        time.sleep(scaled(15, 60))
        proxy.mode = "pass"

    def count():  # type: ignore[no-untyped-def]
        return loki_numbers(loki.url, f'{{run="{run}"}}', start_ns, time.time_ns() + 60_000_000_000)

    try:
        cfg = _config(tmp_path, _loki_sink(proxy.url), run)
        _run_with_config(tmp_path, cfg, "loki", during, count, f"outage_{fault}")
        assert proxy.injected > 0
    finally:
        proxy.close()


def _run_with_config(tmp_path: Path, cfg: str, sink: str, during, count, name: str) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    cfg = cfg.replace('address: "127.0.0.1:0"', f'address: "127.0.0.1:{port}"')
    (tmp_path / "logs").mkdir()
    config = tmp_path / "shipper.yaml"
    config.write_text(cfg)
    shipper = Shipper(config, tmp_path / "shipper.log")
    shipper.start()
    shipper.wait_ready(port, 120)
    total = int(scaled(20_000, 200_000))
    writer = SteadyWriter(tmp_path / "logs" / "app.log", total, int(scaled(1000, 2000)))
    writer.start()
    time.sleep(2)
    during()
    retries = _metric(port, "ecvi_shipper_retries_total", sink)
    writer.join()
    wait_for(lambda: (shipper.sample() or True) and len(count()) >= total, scaled(240, 900), 2.0)
    shipper.stop()
    summary = Summary(name, total, {sink: count()}, shipper.peak_rss, 0, [f"retries           {retries:.0f}"])
    summary.write()
    assert retries > 0, "no retry was counted during the outage"
    lost = summary.lost(sink)
    assert not lost, f"{len(lost)} lost, first {lost[:10]}"
    assert shipper.peak_rss < 200, f"peak RSS {shipper.peak_rss:.0f} MiB"
