"""The Loki sink against a real Loki: DiskBuffer + SinkDriver + LokiSink, read back with query_range."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import orjson
import pytest

import logging_config
from shipper.buffer import DiskBuffer
from shipper.event import Event
from shipper.sinks._common.dead_letter import dead_letter_path, read_dead_letters
from shipper.sinks._common.driver import SinkDriver
from shipper.sinks.loki.config import LokiSinkConfig
from shipper.sinks.loki.sink import LokiSink
from shipper.sources.records import record_from_payload, record_time_ns
from tests.services.loki import Loki

pytestmark = pytest.mark.integration

MS = 1_000_000
HOUR = 3600 * 10**9
PODS = [("backend", "api-6c9f7d-x2k4q", "api"), ("backend", "worker-5b8d9-7hzq1", "worker"),
        ("jobs", "cron-29012-abcde", "cron")]
LOGGERS = ["app.api.v1.companies", "app.worker.tasks", "uvicorn.access"]


def _iso_ms(ts_ns: int) -> str:
    secs, ns = divmod(ts_ns, 10**9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{ns // MS:03d}Z"


def _file_source_events(n: int, start_ns: int, rng: random.Random) -> list[Event]:
    """Events as the file source builds them: a logging_config JSON line per container log line."""
    out = []
    offsets: dict[str, int] = defaultdict(int)
    for i in range(n):
        ns, pod, container = PODS[i % len(PODS)]
        ts = start_ns + i * MS  # unique milliseconds: an unambiguous order per stream
        record: dict[str, Any] = {
            "timestamp": _iso_ms(ts),
            "level": rng.choice(["INFO", "INFO", "INFO", "WARNING", "ERROR"]),
            "logger": LOGGERS[i % len(LOGGERS)],
            "message": f"request {i} handled \u2713" if i % 7 else 'quote " and backslash \\ and\nnewline',
            "request_id": uuid.UUID(int=rng.getrandbits(128)).hex,
            "user_id": f"user-{rng.randrange(50)}",
            "company_id": str(uuid.UUID(int=rng.getrandbits(128))),
        }
        if i % 5 == 0:
            record["trace_id"] = f"{rng.getrandbits(128):032x}"
            record["span_id"] = f"{rng.getrandbits(64):016x}"
        record.update(service="ecvi-backend" if container != "cron" else "ecvi-cron",
                      environment="production", version="1.4.2")
        raw = orjson.dumps(record).decode()
        path = f"/var/log/containers/{pod}_{ns}_{container}-{'0' * 64}.log"
        meta = {"source": "app", "file": path, "offset": offsets[path],
                "kubernetes": {"namespace": ns, "pod_name": pod, "container_name": container,
                               "container_id": "0" * 64}}
        offsets[path] += len(raw) + 1
        parsed = record_from_payload(raw)
        out.append(Event(parsed, raw, record_time_ns(parsed) or ts, meta))
    return out


def _config(endpoint: str, run: str, **kw: Any) -> LokiSinkConfig:
    base: dict[str, Any] = {
        "type": "loki", "inputs": ["app"], "endpoint": endpoint,
        "labels": {"service": "{{ service }}", "level": "{{ level }}", "namespace": "{{ kubernetes.namespace }}",
                   "run": run},
        "batch": {"max_events": 400, "timeout_secs": 0.2},
        "request": {"concurrency": 2, "retry": {"initial_backoff_secs": 0.05, "max_backoff_secs": 5}},
    }
    base.update(kw)
    return LokiSinkConfig.model_validate(base)


async def _ship(config: LokiSinkConfig, events: list[Event], data_dir: Path, *, chunk: int = 250,
                timeout: float = 90) -> LokiSink:
    sink = LokiSink("loki", config, str(data_dir))
    buffer = DiskBuffer(data_dir / "buffer", sink.name)
    driver = SinkDriver(sink, buffer, config, str(data_dir))
    await driver.start()
    for i in range(0, len(events), chunk):  # appended the way a source delivers its batches
        await buffer.append(events[i:i + chunk])
    deadline = asyncio.get_running_loop().time() + timeout
    while buffer.pending_events and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    assert buffer.pending_events == 0, "the driver did not deliver everything in time"
    await driver.stop(5)
    return sink


def _query(loki: Loki, query: str, start_ns: int, end_ns: int, expect: int,
           timeout: float = 30) -> list[dict[str, Any]]:
    """query_range with categorize-labels: stream labels apart from structured metadata."""
    deadline = time.monotonic() + timeout
    while True:
        resp = httpx.get(
            f"{loki.url}/loki/api/v1/query_range",
            params={"query": query, "start": str(start_ns), "end": str(end_ns), "limit": "5000",
                    "direction": "forward"},
            headers={**loki.headers(), "X-Loki-Response-Encoding-Flags": "categorize-labels"},
            timeout=30,
        )
        resp.raise_for_status()
        data = resp.json()["data"]
        assert "categorize-labels" in data.get("encodingFlags", [])
        result: list[dict[str, Any]] = data["result"]
        if sum(len(s["values"]) for s in result) >= expect or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


@pytest.mark.anyio
@pytest.mark.parametrize("encoding", ["protobuf", "json"])
async def test_ships_events_and_reads_them_back_field_by_field(loki: Loki, tmp_path: Path, encoding: str) -> None:
    run = f"{encoding}-{uuid.uuid4().hex[:8]}"
    start = (time.time_ns() // MS - 10 * 60_000) * MS
    events = _file_source_events(3000, start, random.Random(7))
    validator = jsonschema.Draft202012Validator(logging_config.schema())
    for e in events:
        validator.validate(e.record)
    # Delivery order within a batch is not time order (three pods interleave, chunks arrive
    # shuffled): the sink sorts each stream.
    shuffled = events[:]
    random.Random(3).shuffle(shuffled)

    await _ship(_config(loki.url, run, encoding=encoding), shuffled, tmp_path)

    assert not dead_letter_path(tmp_path, "loki").exists()
    result = _query(loki, f'{{run="{run}"}}', start - HOUR, time.time_ns() + HOUR, len(events))
    expected: dict[tuple[str, str, str], list[Event]] = defaultdict(list)
    for e in events:
        expected[(e.record["service"], e.record["level"], e.meta["kubernetes"]["namespace"])].append(e)

    got_streams = {}
    for s in result:
        labels = dict(s["stream"])
        assert labels.pop("service_name") == labels["service"]  # added by Loki
        assert labels.pop("run") == run
        got_streams[(labels.pop("service"), labels.pop("level"), labels.pop("namespace"))] = s["values"]
        assert labels == {}, f"unexpected labels {labels}"
    assert set(got_streams) == set(expected)
    assert sum(len(v) for v in got_streams.values()) == len(events)

    for key, want in expected.items():
        got = got_streams[key]
        assert [int(ts) for ts, _, _ in got] == [e.ts_ns for e in want], f"order or time differs in {key}"
        assert [line for _, line, _ in got] == [e.raw for e in want]
        for (_, _, extra), e in zip(got, want, strict=True):
            sm = dict(extra.get("structuredMetadata", {}))
            sm.pop("detected_level", None)  # Loki's own
            assert sm == {k: v for k, v in {
                "request_id": e.record["request_id"], "user_id": e.record["user_id"],
                "company_id": e.record["company_id"], "trace_id": e.record.get("trace_id"),
                "kubernetes_pod_name": e.meta["kubernetes"]["pod_name"],
            }.items() if v is not None}
            assert _iso_ms(e.ts_ns) == e.record["timestamp"]


@pytest.mark.anyio
async def test_rejected_entries_are_dead_lettered_and_the_rest_delivered(loki: Loki, tmp_path: Path) -> None:
    run = f"reject-{uuid.uuid4().hex[:8]}"
    now = time.time_ns() // MS * MS
    events = _file_source_events(60, now - 5 * 60_000 * MS, random.Random(11))
    too_old = events[10]
    too_old.ts_ns = now - 200 * HOUR  # reject_old_samples_max_age is 168h in the test Loki
    # A stream whose newest line is now: a line two hours behind it is "too far behind".
    behind_run = f"{run}-behind"
    loki.push([{"stream": {"service": "ecvi-backend", "level": "INFO", "namespace": "backend", "run": behind_run},
                "values": [[str(now), "newest"]]}])
    behind = _file_source_events(1, now - 2 * HOUR, random.Random(12))[0]
    behind.record.update(level="INFO", service="ecvi-backend")
    behind.raw = orjson.dumps(behind.record).decode()
    behind.meta["kubernetes"]["namespace"] = "backend"

    await _ship(_config(loki.url, run), events, tmp_path / "a")
    await _ship(_config(loki.url, behind_run), [behind], tmp_path / "b")

    [dead] = list(read_dead_letters(dead_letter_path(tmp_path / "a", "loki")))
    assert dead["event"]["raw"] == too_old.raw and dead["event"]["ts_ns"] == too_old.ts_ns
    assert dead["reason"].startswith("greater_than_max_sample_age: entry for stream '{")
    assert "has timestamp too old" in dead["reason"] and "oldest acceptable timestamp is" in dead["reason"]
    [dead_behind] = list(read_dead_letters(dead_letter_path(tmp_path / "b", "loki")))
    assert dead_behind["event"]["raw"] == behind.raw
    assert "entry too far behind" in dead_behind["reason"]

    result = _query(loki, f'{{run="{run}"}}', now - 300 * HOUR, now + HOUR, len(events) - 1)
    lines = sorted(line for s in result for _, line, _ in s["values"])
    assert lines == sorted(e.raw for e in events if e is not too_old)


class _FaultyProxy:
    """HTTP/1.1 on 127.0.0.1 that answers the first push 429 + Retry-After, then forwards to Loki."""

    def __init__(self, upstream: str, retry_after: str) -> None:
        self.upstream = upstream
        self.retry_after = retry_after
        self.push_times: list[float] = []
        self.statuses: list[int] = []
        self._server: asyncio.Server | None = None
        self._client = httpx.AsyncClient(timeout=30)

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._client.aclose()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while line := await reader.readline():
                method, path, _ = line.decode().split(" ", 2)
                headers = {}
                while (h := await reader.readline()) not in (b"\r\n", b""):
                    k, _, v = h.decode().partition(":")
                    headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                status, extra, content = await self._answer(method, path, headers, body)
                head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(content)}\r\n{extra}\r\n"
                writer.write(head.encode() + content)
                await writer.drain()
        writer.close()

    async def _answer(self, method: str, path: str, headers: dict[str, str],
                      body: bytes) -> tuple[int, str, bytes]:
        if method == "POST":
            self.push_times.append(asyncio.get_running_loop().time())
            if len(self.push_times) == 1:
                self.statuses.append(429)
                return 429, f"Retry-After: {self.retry_after}\r\n", b"Ingestion rate limit exceeded (injected)"
        forwarded = {k: v for k, v in headers.items()
                     if k in ("content-type", "content-encoding", "x-scope-orgid")}
        resp = await self._client.request(method, self.upstream + path, content=body, headers=forwarded)
        if method == "POST":
            self.statuses.append(resp.status_code)
        return resp.status_code, "", resp.content


@pytest.mark.anyio
async def test_429_retry_after_is_honoured_through_a_proxy(loki: Loki, tmp_path: Path) -> None:
    run = f"ratelimit-{uuid.uuid4().hex[:8]}"
    now = time.time_ns() // MS * MS
    events = _file_source_events(40, now - 60_000 * MS, random.Random(5))
    proxy = _FaultyProxy(loki.url, retry_after="2")

    async with proxy as url:
        await _ship(_config(url, run, batch={"max_events": 1000, "timeout_secs": 0.2},
                            request={"concurrency": 1, "retry": {"initial_backoff_secs": 0.01,
                                                                 "max_backoff_secs": 10}}),
                    events, tmp_path, chunk=len(events))

    assert proxy.statuses == [429, 204]
    assert proxy.push_times[1] - proxy.push_times[0] >= 1.95  # waited as told, not 0.01s
    result = _query(loki, f'{{run="{run}"}}', now - HOUR, now + HOUR, len(events))
    assert sum(len(s["values"]) for s in result) == len(events)
    assert not dead_letter_path(tmp_path, "loki").exists()
