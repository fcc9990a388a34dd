"""The file sink, fed through the real disk buffer and driver, with one bad line among good ones."""

import asyncio
import time
from pathlib import Path

import orjson
import pytest

from shipper import metrics
from shipper.buffer import DiskBuffer
from shipper.event import Event
from shipper.sinks._common.dead_letter import read_dead_letters
from shipper.sinks._common.driver import SinkDriver
from shipper.sinks.file.config import FileSinkConfig
from shipper.sinks.file.sink import FileSink
from tests.shipper._support import tail_lines

GOOD_TS = "2025-01-01T00:00:00.000Z"


def _tail(tmp_path: Path, payloads: list[str], source: str) -> list[Event]:
    """Events exactly as the file source makes them from CRI lines holding these payloads."""
    lines = [f"2025-01-01T00:00:01.000000000Z stdout F {p}" for p in payloads]
    return tail_lines(tmp_path, lines, source, fmt="cri")


def _payload(n: int, ts: str = GOOD_TS) -> str:
    return orjson.dumps({"timestamp": ts, "level": "info", "message": f"m{n}"}).decode()


async def _deliver(tmp_path: Path, events: list[Event], encoding: str) -> tuple[dict[str, list[bytes]], list[dict]]:
    cfg = FileSinkConfig.model_validate({
        "type": "file", "inputs": ["app"], "path": f"{tmp_path}/out/%Y/%Y-%m-%d.ndjson", "encoding": encoding,
        "healthcheck": False, "batch": {"max_events": 100, "timeout_secs": 0.01},
        "request": {"concurrency": 1, "retry": {"initial_backoff_secs": 0.01, "max_backoff_secs": 0.02}}})
    sink = FileSink("out", cfg, str(tmp_path))
    buf = DiskBuffer(tmp_path / "buf", "out")
    drv = SinkDriver(sink, buf, cfg, str(tmp_path))
    await drv.start()
    await buf.append(events)
    loop = asyncio.get_running_loop()
    end = loop.time() + 5
    while buf.pending_events and loop.time() < end:
        await asyncio.sleep(0.01)
    await drv.stop(1)
    files = {str(p.relative_to(tmp_path / "out")): p.read_bytes().splitlines()
             for p in sorted((tmp_path / "out").rglob("*.ndjson"))}
    return files, list(read_dead_letters(tmp_path / "dead_letter" / "out.ndjson"))


def _repaired(source: str, reason: str) -> float:
    return metrics.REGISTRY.get_sample_value(
        "ecvi_shipper_events_repaired_total", {"component": f"source:{source}", "reason": reason}) or 0.0


@pytest.mark.anyio
@pytest.mark.parametrize("encoding", ["raw", "event"])
@pytest.mark.parametrize("bad_ts", ["9999-12-31T23:59:59Z", "1600-01-01T00:00:00Z"])
async def test_out_of_range_time_costs_nothing_but_its_time(tmp_path: Path, bad_ts: str, encoding: str) -> None:
    source = f"f{bad_ts[:4]}{encoding}"
    before = _repaired(source, "time_out_of_range")
    payloads = [_payload(1), _payload(2, bad_ts), _payload(3)]
    files, dead = await _deliver(tmp_path, _tail(tmp_path, payloads, source), encoding)
    year = time.strftime("%Y", time.gmtime())
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert dead == []
    assert sorted(files) == ["2025/2025-01-01.ndjson", f"{year}/{today}.ndjson"]
    good, bad = files["2025/2025-01-01.ndjson"], files[f"{year}/{today}.ndjson"]
    if encoding == "raw":
        assert good == [payloads[0].encode(), payloads[2].encode()]
        assert bad == [payloads[1].encode()]
    else:
        docs = [orjson.loads(x) for x in good + bad]
        assert [d["record"]["message"] for d in docs] == ["m1", "m3", "m2"]
        assert docs[2]["record"]["timestamp"] == bad_ts
        assert docs[2]["meta"]["repaired"] == ["time_out_of_range"]
        assert "repaired" not in docs[0]["meta"]
        assert abs(docs[2]["ts_ns"] - time.time_ns()) < 60 * 10**9
    assert _repaired(source, "time_out_of_range") == before + 1


@pytest.mark.anyio
@pytest.mark.parametrize("ts_ns", [-(2**63), 2**63 - 1, -1, 0])
async def test_any_int64_time_has_a_path(tmp_path: Path, ts_ns: int) -> None:
    events = [Event(None, '{"message":"edge"}', ts_ns, {"source": "edge"})]
    files, dead = await _deliver(tmp_path, events, "event")
    assert dead == []
    [(path, lines)] = files.items()
    expected = time.strftime("%Y/%Y-%m-%d.ndjson", time.gmtime(ts_ns // 1_000_000_000))
    assert path == expected
    assert orjson.loads(lines[0])["ts_ns"] == ts_ns


@pytest.mark.anyio
@pytest.mark.parametrize("depth", [300, 1000])
async def test_deep_record_is_delivered_as_text(tmp_path: Path, depth: int) -> None:
    deep = '{"a":' * depth + "1" + "}" * depth
    lazy = '{"timestamp":"' + GOOD_TS + '","d":' + deep + "}"  # time taken without parsing the record
    source = f"fdeep{depth}"
    before = _repaired(source, "too_deep")
    payloads = [_payload(1), deep, lazy, _payload(4)]
    files, dead = await _deliver(tmp_path, _tail(tmp_path, payloads, source), "event")
    assert dead == []
    docs = [orjson.loads(x) for lines in files.values() for x in lines]
    assert [d["record"].get("message") for d in docs] == ["m1", deep, lazy, "m4"]
    assert [d["meta"].get("repaired") for d in docs] == [None, ["too_deep"], ["too_deep"], None]
    assert _repaired(source, "too_deep") == before + 2


@pytest.mark.anyio
async def test_event_the_sink_cannot_encode_is_rejected_alone(tmp_path: Path) -> None:
    bad = Event({"message": "bad"}, "bad", 1735689600 * 10**9, {"source": "x"})
    nested: object = 1
    for _ in range(300):  # a record built in code (a transform, say) past what orjson writes
        nested = [nested]
    bad.record = {"message": "bad", "nested": nested}
    events = [Event(None, _payload(1), 1735689600 * 10**9), bad, Event(None, _payload(3), 1735689600 * 10**9)]
    labels = {"component": "sink:out", "reason": "dead_letter_unwritable"}
    dropped = metrics.REGISTRY.get_sample_value("ecvi_shipper_events_dropped_total", labels) or 0.0
    files, dead = await _deliver(tmp_path, events, "event")
    docs = [orjson.loads(x) for lines in files.values() for x in lines]
    assert [d["record"]["message"] for d in docs] == ["m1", "m3"]
    if dead:  # a dead-letter writer that can hold any record
        assert [d["event"]["raw"] for d in dead] == ["bad"]
        assert dead[0]["reason"].startswith("cannot encode: TypeError: Recursion limit")
    else:  # one that cannot encode this record either: dropped alone, and counted
        assert metrics.REGISTRY.get_sample_value("ecvi_shipper_events_dropped_total", labels) == dropped + 1
