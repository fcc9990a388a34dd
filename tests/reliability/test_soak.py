"""Soak: a steady rate into the real Loki and Elasticsearch; RSS and open descriptors sampled
every 10 s must stay flat. The long profile runs 30 minutes; the short one a minute."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest

from tests.reliability._backends import es_numbers, loki_numbers
from tests.reliability._harness import (
    SUMMARY_DIR,
    Shipper,
    Summary,
    count_numbers,
    free_port,
    ndjson_lines,
    open_fds,
    scaled,
    wait_for,
)
from tests.reliability.test_crash import SteadyWriter

pytestmark = [pytest.mark.reliability, pytest.mark.integration]


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@pytest.mark.timeout(int(scaled(900, 3600)))
def test_soak(tmp_path: Path, loki, es) -> None:  # type: ignore[no-untyped-def]
    seconds = scaled(60, 1800)
    rate = int(os.environ.get("ECVI_SOAK_RATE", "1500"))
    run = uuid.uuid4().hex[:8]
    index = f"soak-{run}"
    logs = tmp_path / "logs"
    logs.mkdir()
    out = tmp_path / "out"
    port = free_port()
    config = tmp_path / "shipper.yaml"
    config.write_text(f"""
data_dir: {tmp_path}/data
api: {{address: "127.0.0.1:{port}"}}
sources:
  app: {{type: file, include: ["{logs}/app.log*"], format: cri}}
transforms:
  tag: {{type: add_fields, inputs: [app], fields: {{run: "{run}"}}}}
sinks:
  loki: {{type: loki, inputs: [tag], endpoint: "{loki.url}",
          labels: {{service: "{{{{ service }}}}", run: "{{{{ run }}}}"}}}}
  es: {{type: elasticsearch, inputs: [app], endpoint: "{es.url}", index: "{index}-%Y.%m.%d"}}
  out: {{type: file, inputs: [app], path: "{out}/out.ndjson"}}
""")
    shipper = Shipper(config, tmp_path / "shipper.log")
    shipper.start()
    shipper.wait_ready(port)
    assert shipper.proc is not None
    pid = shipper.proc.pid
    total = int(seconds * rate)
    start_ns = time.time_ns() - 60_000_000_000
    writer = SteadyWriter(logs / "app.log", total, rate, rotate_bytes=16 * 1024 * 1024)
    writer.start()
    samples: list[tuple[float, float, int]] = []
    t0 = time.time()
    while writer.is_alive():
        samples.append((time.time() - t0, _rss_mib(pid), open_fds(pid)))
        time.sleep(10)
    samples.append((time.time() - t0, _rss_mib(pid), open_fds(pid)))
    wait_for(lambda: len(count_numbers(ndjson_lines(out))) >= total
             and len(es_numbers(es.url, f"{index}-*")) >= total, 600, 5.0)
    shipper.sample()
    shipper.stop()
    summary = Summary("soak", total, {
        "file": count_numbers(ndjson_lines(out)),
        "loki": loki_numbers(loki.url, f'{{run="{run}"}}', start_ns, time.time_ns() + 60_000_000_000),
        "elasticsearch": es_numbers(es.url, f"{index}-*"),
    }, shipper.peak_rss, 0, [f"rate              {rate}/s for {seconds:.0f}s"])
    summary.write()
    table = ["| t (s) | RSS (MiB) | open fds |", "| ---: | ---: | ---: |"]
    table += [f"| {t:.0f} | {rss:.1f} | {fds} |" for t, rss, fds in samples]
    (SUMMARY_DIR / "soak-samples.md").write_text("\n".join(table) + "\n")
    for sink in ("file", "loki", "elasticsearch"):
        assert not summary.lost(sink), f"{sink}: {len(summary.lost(sink))} lost"
    # Flat: after warm-up, the last third of the run stays within 25 MiB and 20 descriptors of the middle.
    steady = samples[len(samples) // 3:]
    assert max(s[1] for s in steady) - min(s[1] for s in steady) < 25, table
    assert max(s[2] for s in steady) - min(s[2] for s in steady) < 20, table
