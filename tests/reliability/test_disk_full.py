"""data_dir on a small tmpfs: a full disk holds the sources back, says so, and recovers."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipper import metrics
from shipper.config import parse_config
from shipper.topology import Topology
from tests.reliability._harness import Summary, count_numbers
from tests.shipper._gate_sink import GateSink, install_gate_sink

pytestmark = [pytest.mark.reliability, pytest.mark.anyio]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "data"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mnt)], capture_output=True)
    if res.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"cannot mount a tmpfs for the disk-full test: {res.stderr.decode()}")
        pytest.skip(f"cannot mount a tmpfs: {res.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


async def test_full_disk_blocks_sources_and_recovers(tmp_path: Path, small_disk: Path, monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    install_gate_sink(monkeypatch)
    logs = tmp_path / "logs"
    logs.mkdir()
    total = 60_000  # ~20 MiB of lines for a 6 MiB disk
    with (logs / "a.log").open("w") as f:
        for i in range(total):
            f.write(json.dumps({"level": "INFO", "message": "x" * 300, "n": i}) + "\n")
    config = parse_config(f"""
data_dir: {small_disk}
api: {{enabled: false}}
checkpoint_interval_secs: 0.2
sources:
  app: {{type: file, include: ["{logs}/*.log"], format: json, glob_interval_secs: 0.05, poll_interval_secs: 0.01}}
sinks:
  gate: {{type: file, inputs: [app], path: unused, healthcheck: false,
          batch: {{max_events: 1000, timeout_secs: 0.01}},
          request: {{retry: {{initial_backoff_secs: 0.01, max_backoff_secs: 0.05}}}}}}
""", env={})

    topo = Topology(config)
    await topo.start()
    for _ in range(200):
        if (metrics.REGISTRY.get_sample_value("ecvi_shipper_buffer_disk_full_total", {"sink": "gate"}) or 0) > 0:
            break
        await asyncio.sleep(0.05)
    assert metrics.REGISTRY.get_sample_value("ecvi_shipper_buffer_blocked", {"sink": "gate"}) == 1
    src = topo.sources["app"]
    offset = next(t.offset for t in src.tailers.values())
    await asyncio.sleep(0.5)
    assert next(t.offset for t in src.tailers.values()) == offset  # reading paused
    GateSink.gate_open = True  # space comes back as the sink delivers
    for _ in range(1200):
        if len(GateSink.accepted) >= total:
            break
        await asyncio.sleep(0.05)
    await topo.stop()
    assert "no space left" in caplog.text
    seen = count_numbers(json.dumps({"n": n}).encode() for n in GateSink.accepted)
    summary = Summary("disk_full", total, {"gate": seen})
    summary.write()
    assert not summary.lost("gate")
