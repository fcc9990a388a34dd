"""Crash: numbered records written to rotating files while the shipper is SIGKILLed at random
moments (one right after a rotation, others mid-flush); the real Loki, the real Elasticsearch
and the file sink must each end with every number. Elasticsearch must hold no duplicate."""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from pathlib import Path

import orjson
import pytest

from tests.reliability._backends import es_numbers, loki_numbers
from tests.reliability._harness import Shipper, Summary, count_numbers, free_port, ndjson_lines, scaled, wait_for

pytestmark = [pytest.mark.reliability, pytest.mark.integration]


class SteadyWriter(threading.Thread):
    """``rate`` numbered records per second, rotating by rename every ``rotate_bytes``."""

    def __init__(self, path: Path, total: int, rate: int, rotate_bytes: int = 1024 * 1024) -> None:
        super().__init__(daemon=True)
        self.path, self.total, self.rate, self.rotate_bytes = path, total, rate, rotate_bytes
        self.written = 0
        self.rotated = threading.Event()
        self.rotations = 0

    def run(self) -> None:
        f = self.path.open("a")
        size = 0
        start = time.time()
        while self.written < self.total:
            due = min(self.total, int((time.time() - start) * self.rate) + 1)
            while self.written < due:
                ts = time.time()
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"
                rec = {"timestamp": stamp, "level": "INFO", "logger": "crash", "message": "numbered",
                       "service": "crash", "n": self.written}
                line = b"2025-01-01T00:00:00.000000000Z stdout F " + orjson.dumps(rec) + b"\n"
                f.write(line.decode())
                size += len(line)
                self.written += 1
            f.flush()
            if size >= self.rotate_bytes:
                f.close()
                self.rotations += 1
                os.rename(self.path, self.path.with_name(f"{self.path.name}.{self.rotations}"))
                f = self.path.open("a")
                size = 0
                self.rotated.set()
            time.sleep(0.005)
        f.close()


def test_sigkill_during_delivery_to_real_backends(tmp_path: Path, loki, es) -> None:  # type: ignore[no-untyped-def]
    run = uuid.uuid4().hex[:8]
    logs = tmp_path / "logs"
    logs.mkdir()
    out = tmp_path / "out"
    port = free_port()
    index = f"crash-{run}"
    config = tmp_path / "shipper.yaml"
    config.write_text(f"""
data_dir: {tmp_path}/data
api: {{address: "127.0.0.1:{port}"}}
sources:
  app: {{type: file, include: ["{logs}/app.log*"], format: cri, glob_interval_secs: 0.2, rotate_wait_secs: 2}}
transforms:
  tag: {{type: add_fields, inputs: [app], fields: {{run: "{run}"}}}}
sinks:
  loki: {{type: loki, inputs: [tag], endpoint: "{loki.url}",
          labels: {{service: "{{{{ service }}}}", run: "{{{{ run }}}}"}},
          batch: {{max_events: 1000, timeout_secs: 0.2}}}}
  es: {{type: elasticsearch, inputs: [app], endpoint: "{es.url}", index: "{index}-%Y.%m.%d",
        batch: {{max_events: 1000, timeout_secs: 0.2}}}}
  out: {{type: file, inputs: [app], path: "{out}/out.ndjson", batch: {{max_events: 1000, timeout_secs: 0.2}}}}
""")
    total = int(scaled(40_000, 400_000))
    rate = int(scaled(2_000, 4_000))
    shipper = Shipper(config, tmp_path / "shipper.log")
    shipper.start()
    shipper.wait_ready(port)
    start_ns = time.time_ns() - 60_000_000_000
    writer = SteadyWriter(logs / "app.log", total, rate)
    writer.start()
    rng = random.Random(11)
    kills = int(scaled(5, 12))
    for i in range(kills):
        if i == 1:  # right after a rotation
            writer.rotated.clear()
            writer.rotated.wait(30)
        else:
            time.sleep(rng.uniform(0.5, total / rate / kills))
        shipper.kill9()
        shipper.wait_ready(port)
    writer.join()
    end_ns = time.time_ns() + 60_000_000_000

    def done() -> bool:
        shipper.sample()
        return len(count_numbers(ndjson_lines(out))) >= total and len(es_numbers(es.url, f"{index}-*")) >= total

    wait_for(done, scaled(300, 1200), 2.0)
    wait_for(lambda: len(loki_numbers(loki.url, f'{{run="{run}"}}', start_ns, end_ns)) >= total, 120, 2.0)
    shipper.stop()
    summary = Summary("crash", total, {
        "file": count_numbers(ndjson_lines(out)),
        "loki": loki_numbers(loki.url, f'{{run="{run}"}}', start_ns, end_ns),
        "elasticsearch": es_numbers(es.url, f"{index}-*"),
    }, shipper.peak_rss, shipper.restarts, [f"rotations         {writer.rotations}", f"writer rate       {rate}/s"])
    summary.write()
    for sink in ("file", "loki", "elasticsearch"):
        lost = summary.lost(sink)
        assert not lost, f"{sink}: {len(lost)} lost, first {lost[:10]}"
    assert summary.duplicates("elasticsearch") == 0
