"""The whole pipeline in one process: backpressure, metrics API, delivery order."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path

import pytest

from shipper import metrics
from shipper.config import parse_config
from shipper.topology import Topology
from tests.shipper._gate_sink import GateSink, install_gate_sink

pytestmark = pytest.mark.anyio


@pytest.fixture
def gate_sink(monkeypatch: pytest.MonkeyPatch) -> type[GateSink]:
    return install_gate_sink(monkeypatch)


def _write_lines(path: Path, n: int, pad: int = 300) -> int:
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"level": "INFO", "message": "x" * pad, "n": i}) + "\n")
    return path.stat().st_size


def _config(tmp_path: Path, api: str = "127.0.0.1:0", **sink_extra: object) -> str:
    extra = "".join(f", {k}: {json.dumps(v)}" for k, v in sink_extra.items())
    return f"""
data_dir: {tmp_path}/data
api: {{address: "{api}", enabled: false}}
checkpoint_interval_secs: 0.1
sources:
  app: {{type: file, include: ["{tmp_path}/logs/*.log"], format: json, glob_interval_secs: 0.05,
         poll_interval_secs: 0.01}}
sinks:
  gate: {{type: file, inputs: [app], path: unused, healthcheck: false,
          batch: {{max_events: 500, timeout_secs: 0.01}},
          request: {{retry: {{initial_backoff_secs: 0.01, max_backoff_secs: 0.05}}}},
          buffer: {{max_bytes: 1048576}}{extra}}}
"""


async def test_full_buffer_blocks_reading_and_recovers_without_loss(tmp_path: Path, gate_sink: type[GateSink]) -> None:
    (tmp_path / "logs").mkdir()
    size = _write_lines(tmp_path / "logs" / "a.log", 40_000)  # ~13 MiB, 13x the buffer

    topo = Topology(parse_config(_config(tmp_path)))
    await topo.start()
    src = topo.sources["app"]
    buf = topo.buffers["gate"]
    await asyncio.sleep(1.0)
    # Blocked: the buffer is at its bound, the source stopped reading far before the end.
    assert metrics.REGISTRY.get_sample_value("ecvi_shipper_buffer_blocked", {"sink": "gate"}) == 1
    assert buf.pending_bytes <= buf.max_bytes
    offsets = [t.offset for t in src.tailers.values()]
    await asyncio.sleep(0.5)
    assert [t.offset for t in src.tailers.values()] == offsets  # reading paused
    assert offsets[0] < size / 4
    saved = json.loads((tmp_path / "data/checkpoints/app.json").read_text())["files"]
    assert all(e["offset"] <= offsets[0] for e in saved.values())
    retries = metrics.REGISTRY.get_sample_value(
        "ecvi_shipper_retries_total", {"sink": "gate", "reason": "503_service_unavailable"})
    assert retries and retries > 3
    gate_sink.gate_open = True
    for _ in range(600):
        if len(gate_sink.accepted) >= 40_000:
            break
        await asyncio.sleep(0.05)
    await topo.stop()
    # All of it, each once (two requests in flight may finish out of order).
    assert sorted(gate_sink.accepted) == list(range(40_000))


async def test_api_serves_metrics_health_and_ready(tmp_path: Path, gate_sink: type[GateSink]) -> None:
    from shipper.api.server import ApiServer
    from shipper.topology import Health

    (tmp_path / "logs").mkdir()
    _write_lines(tmp_path / "logs" / "a.log", 10)
    gate_sink.gate_open = True

    health = Health()
    api = ApiServer("127.0.0.1:0", health)
    api.start()
    base = f"http://127.0.0.1:{api.port}"

    def get(path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(base + path, timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    assert (await asyncio.to_thread(get, "/health"))[0] == 503  # not started yet
    topo = Topology(parse_config(_config(tmp_path)), health)
    await topo.start()
    for _ in range(100):
        if len(gate_sink.accepted) >= 10:
            break
        await asyncio.sleep(0.05)
    topo.sync_health()
    status, body = await asyncio.to_thread(get, "/health")
    assert status == 200
    status, body = await asyncio.to_thread(get, "/ready")
    assert status == 200 and json.loads(body)["sinks"] == {"gate": True}
    status, text = await asyncio.to_thread(get, "/metrics")
    assert status == 200
    for name in ("ecvi_shipper_events_received_total", "ecvi_shipper_events_sent_total",
                 "ecvi_shipper_buffer_bytes", "ecvi_shipper_file_lag_bytes",
                 "ecvi_shipper_request_duration_seconds_bucket", "ecvi_shipper_batch_events_bucket",
                 "ecvi_shipper_last_success_timestamp_seconds"):
        assert name in text, name
    assert (await asyncio.to_thread(get, "/nope"))[0] == 404
    await topo.stop()
    assert (await asyncio.to_thread(get, "/ready"))[0] == 503
    api.stop()
