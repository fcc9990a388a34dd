"""The CloudWatch sink against moto: disk buffer, shared driver, real HTTP, events read back."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from shipper import metrics
from shipper.buffer import DiskBuffer
from shipper.event import Event
from shipper.sinks._common.driver import SinkDriver
from shipper.sinks.cloudwatch.limits import MAX_AGE_MS, TRUNCATION_MARKER
from shipper.sinks.cloudwatch.sink import CloudWatchSink
from tests.services.aws import Moto
from tests.shipper.sinks.cloudwatch._support import make_config

pytestmark = pytest.mark.integration

PODS = ["web-7d9f-a", "web-7d9f-b", "worker-55c-x"]


def _events(n: int, start_ms: int) -> list[Event]:
    """``n`` JSON lines spread over the pods, one millisecond apart, some not ASCII."""
    out = []
    for i in range(n):
        pod = PODS[i % len(PODS)]
        raw = orjson.dumps({"level": "info", "message": f"event {i} ✓ délivré", "n": i}).decode()
        meta = {"kubernetes": {"namespace": "ecvi", "pod_name": pod}, "id": f"{pod}:{i}"}
        out.append(Event(orjson.loads(raw), raw, (start_ms + i) * 1_000_000 + 456_789, meta))
    return out


async def _ship(sink: CloudWatchSink, events: list[Event], tmp_path: Path, block: int = 250) -> SinkDriver:
    """Write ``events`` to the sink's disk buffer (each block reversed) and run the driver until drained."""
    buf = DiskBuffer(tmp_path / "buffer", sink.name)
    driver = SinkDriver(sink, buf, sink.config, str(tmp_path))
    await driver.start()
    for i in range(0, len(events), block):
        await buf.append(list(reversed(events[i : i + block])))
    deadline = time.monotonic() + 120
    while buf.pending_events and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert buf.pending_events == 0, "the sink did not drain its buffer"
    await driver.stop(5)
    return driver


def read_stream(logs: Any, group: str, stream: str) -> list[dict[str, Any]]:
    """Every event of a stream from the head, following nextForwardToken until it repeats."""
    events: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        kwargs = {"nextToken": token} if token else {}
        page = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True, limit=400,
                                   **kwargs)
        events.extend(page["events"])
        if page["nextForwardToken"] == token:
            return events
        token = page["nextForwardToken"]


def _dead_letters(tmp_path: Path, name: str) -> list[dict[str, Any]]:
    path = tmp_path / "dead_letter" / f"{name}.ndjson"
    return [orjson.loads(x) for x in path.read_bytes().splitlines()] if path.exists() else []


@pytest.mark.anyio
async def test_ships_3000_events_for_3_pods(aws_env: Moto, tmp_path: Path) -> None:
    group = f"/ecvi/it/{uuid.uuid4().hex[:10]}"
    now_ms = int(time.time() * 1000)
    events = _events(3000, now_ms - 3_600_000)
    big = Event({}, "B" * 1_200_000, (now_ms - 1_000) * 1_000_000, {"kubernetes": {"pod_name": PODS[0]}})
    too_old_ns = (now_ms - MAX_AGE_MS - 60_000) * 1_000_000
    old = Event({}, "too old", too_old_ns, {"kubernetes": {"pod_name": PODS[1]}})
    config = make_config(
        endpoint=aws_env.url, group=group, healthcheck=True,
        batch={"max_events": 400, "timeout_secs": 0.05}, request={"concurrency": 2},
    )
    sink = CloudWatchSink("cw-it", config, str(tmp_path))

    driver = await _ship(sink, [*events, big, old], tmp_path)

    assert driver.healthy is True
    logs = aws_env.client("logs")
    [described] = logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]
    assert described["logGroupName"] == group
    assert described["retentionInDays"] == 30
    streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    assert sorted(s["logStreamName"] for s in streams) == sorted(PODS)
    for pod in PODS:
        expected = [e for e in events if e.meta["kubernetes"]["pod_name"] == pod]
        got = read_stream(logs, group, pod)
        if pod == PODS[0]:
            stored_big = got.pop()
            assert stored_big["timestamp"] == now_ms - 1_000
            kept = 1_048_576 - 26 - len(TRUNCATION_MARKER.encode())
            assert stored_big["message"] == "B" * kept + TRUNCATION_MARKER
        assert len(got) == len(expected) == 1000
        assert [g["message"] for g in got] == [e.raw for e in expected]
        assert [g["timestamp"] for g in got] == [e.ts_ns // 1_000_000 for e in expected]
    [dead] = _dead_letters(tmp_path, "cw-it")
    assert dead["reason"].startswith("too_old:")
    assert dead["event"]["raw"] == "too old"
    assert sink.truncated_events == 1


class _FaultyProxy:
    """A local HTTP proxy to moto that fails chosen PutLogEvents requests before they reach it."""

    def __init__(self, upstream: str, faults: dict[int, str]) -> None:
        self.upstream = upstream
        self.faults = faults
        self.puts = 0
        self.injected: Counter[str] = Counter()
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fault = None
                if self.headers.get("X-Amz-Target", "").endswith(".PutLogEvents"):
                    with proxy.lock:
                        proxy.puts += 1
                        fault = proxy.faults.get(proxy.puts)
                        if fault:
                            proxy.injected[fault] += 1
                if fault == "drop":
                    self.close_connection = True
                    return
                if fault == "throttle":
                    self._reply(400, {"__type": "ThrottlingException", "message": "Rate exceeded"})
                    return
                if fault == "unavailable":
                    self._reply(503, {"__type": "ServiceUnavailableException", "message": "try later"})
                    return
                skip = ("host", "content-length")
                headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
                r = httpx.post(proxy.upstream + self.path, content=body, headers=headers, timeout=30)
                self.send_response(r.status_code)
                self.send_header("Content-Type", r.headers.get("content-type", "application/x-amz-json-1.1"))
                self.send_header("Content-Length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

            def _reply(self, status: int, doc: dict[str, str]) -> None:
                data = orjson.dumps(doc)
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    @classmethod
    def running(cls, upstream: str, faults: dict[int, str]) -> Iterator[_FaultyProxy]:
        proxy = cls(upstream, faults)
        thread = threading.Thread(target=proxy.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield proxy
        finally:
            proxy.server.shutdown()
            proxy.server.server_close()


@pytest.fixture
def faulty_proxy(aws_env: Moto) -> Iterator[_FaultyProxy]:
    # Counting PutLogEvents only: the first put to each stream finds it missing (the sink creates it
    # and puts again), so puts 1-4 store pod a and b of the first send; its third stream then meets a
    # throttle, a 503, a dropped connection and a throttle again, and so does a later send.
    faults = {5: "throttle", 6: "unavailable", 8: "drop", 9: "throttle", 13: "throttle"}
    yield from _FaultyProxy.running(aws_env.url, faults)


@pytest.mark.anyio
async def test_throttling_and_outages_are_retried_without_duplicates(
    aws_env: Moto, faulty_proxy: _FaultyProxy, tmp_path: Path
) -> None:
    group = f"/ecvi/it/{uuid.uuid4().hex[:10]}"
    events = _events(1800, int(time.time() * 1000) - 600_000)
    config = make_config(
        endpoint=faulty_proxy.url, group=group,
        batch={"max_events": 300, "timeout_secs": 0.05},
        request={"concurrency": 1, "timeout_secs": 10,
                 "retry": {"initial_backoff_secs": 0.01, "max_backoff_secs": 0.1}},
    )
    name = f"cw-faulty-{uuid.uuid4().hex[:6]}"
    sink = CloudWatchSink(name, config, str(tmp_path))

    await _ship(sink, events, tmp_path, block=300)

    assert faulty_proxy.injected == {"throttle": 3, "unavailable": 1, "drop": 1}
    retries = sum(
        metrics.REGISTRY.get_sample_value("ecvi_shipper_retries_total", {"sink": name, "reason": r}) or 0
        for r in ("throttlingexception", "serviceunavailableexception", "connection")
    )
    assert retries == 5
    logs = aws_env.client("logs")
    for pod in PODS:
        got = read_stream(logs, group, pod)
        expected = [e for e in events if e.meta["kubernetes"]["pod_name"] == pod]
        assert [g["message"] for g in got] == [e.raw for e in expected]  # each once, in order
    assert _dead_letters(tmp_path, name) == []
