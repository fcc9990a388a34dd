"""Dead letters: always written, and a replay loses nothing (appends during it, damaged lines, mode, fields)."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path
from typing import Any

import anyio.to_thread
import orjson
import pytest

from shipper.config import ShipperConfig, parse_config
from shipper.event import Event
from shipper.jobs.replay import replay_dead_letters
from shipper.sinks._common.base import Sink
from shipper.sinks._common.dead_letter import DeadLetterWriter, dead_letter_path, read_dead_letters
from shipper.sinks._common.outcome import SendOutcome, TransientSinkError
from tests.factories import event


def _config(tmp: Path) -> ShipperConfig:
    return parse_config(f"""
data_dir: {tmp}/data
sources: {{app: {{type: file, include: ["{tmp}/logs/*.log"]}}}}
sinks: {{all: {{type: file, inputs: [app], path: "{tmp}/out.ndjson", batch: {{max_events: 2}}}}}}
""", env={})


def _ev(i: int) -> Event:
    return event(message=f"m{i}", raw=f"m{i}", ts_ns=i, meta={"source": "app"})


class GatedSink(Sink):
    """Accepts everything except messages in ``reject``; each send waits for ``gate``."""

    def __init__(self, gate: asyncio.Event, reject: set[str] | None = None) -> None:
        super().__init__("all", None, "")
        self.gate, self.reject, self.sent = gate, reject or set(), []  # type: ignore[var-annotated]
        self.sending = asyncio.Event()

    async def send(self, events: list[Event]) -> SendOutcome:
        self.sending.set()
        await self.gate.wait()
        self.sent.extend(e.record["message"] for e in events)
        return SendOutcome(rejected=[(e, "still bad") for e in events if e.record["message"] in self.reject])

    def event_size(self, event: Event) -> int:
        return len(event.raw)


def _open_gate() -> asyncio.Event:
    gate = asyncio.Event()
    gate.set()
    return gate


def _messages(path: Path) -> list[str]:
    return [e["event"]["record"]["message"] for e in read_dead_letters(path) if "event" in e]


@pytest.mark.anyio
async def test_dead_letters_appended_while_replay_sends_survive(tmp_path: Path) -> None:
    config = _config(tmp_path)
    writer = DeadLetterWriter(config.data_dir, "all")
    writer.write([(_ev(i), "first failure") for i in range(4)])

    gate = asyncio.Event()
    sink = GatedSink(gate, reject={"m1"})
    replay = asyncio.create_task(replay_dead_letters(config, "all", sink))
    await sink.sending.wait()
    # The sink is mid-send: new dead letters arrive now, from the running shipper.
    writer.write([(_ev(i), "new failure") for i in (10, 11)])
    gate.set()
    await replay
    assert sink.sent == ["m0", "m1", "m2", "m3"]
    assert sorted(_messages(writer.path)) == ["m1", "m10", "m11"]


@pytest.mark.anyio
async def test_replay_keeps_damaged_lines_mode_and_fields(tmp_path: Path) -> None:
    config = _config(tmp_path)
    path = dead_letter_path(config.data_dir, "all")
    writer = DeadLetterWriter(config.data_dir, "all")
    writer.write([(_ev(1), "first failure"), (_ev(2), "first failure")])
    os.chmod(path, 0o644)
    damaged = [b"{not json\n", b"[1,2]\n", orjson.dumps({"event": {"raw": "no record", "ts_ns": 1}}) + b"\n"]
    with path.open("ab") as f:
        f.writelines(damaged)
    original = {e["event"]["record"]["message"]: e for e in read_dead_letters(path) if "event" in e
                and "record" in e["event"]}

    result = await replay_dead_letters(config, "all", GatedSink(_open_gate(), reject={"m2"}))

    assert (result.resent, result.failed_again) == (1, 1)
    assert result.unreadable == 3 and len(result.problems) == 3
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    lines = path.read_bytes().splitlines(keepends=True)
    assert all(d in lines for d in damaged)
    kept = [orjson.loads(x) for x in lines if x not in damaged]
    assert len(kept) == 1
    assert kept[0]["time"] == original["m2"]["time"] and kept[0]["event"] == original["m2"]["event"]
    assert kept[0]["reason"] == "still bad"


class FlakySink(GatedSink):
    """Fails the first send as a whole (the backend was briefly away) and raises on ``poison``."""

    def __init__(self, poison: str = "") -> None:
        super().__init__(_open_gate())
        self.poison, self.first = poison, True

    async def send(self, events: list[Event]) -> SendOutcome:
        if self.first:
            self.first = False
            raise TransientSinkError("all", "503: restarting")
        if any(e.record["message"] == self.poison for e in events):
            raise TypeError("cannot encode")
        return await super().send(events)


@pytest.mark.anyio
async def test_replay_rides_out_a_brief_outage(tmp_path: Path) -> None:
    """Through the shared delivery: a transient failure is retried, not written back."""
    config = _config(tmp_path)
    writer = DeadLetterWriter(config.data_dir, "all")
    writer.write([(_ev(i), "first failure") for i in range(3)])
    sink = FlakySink()
    result = await replay_dead_letters(config, "all", sink)
    assert (result.resent, result.failed_again) == (3, 0)
    assert sorted(sink.sent) == ["m0", "m1", "m2"]
    assert _messages(writer.path) == []


@pytest.mark.anyio
async def test_replay_isolates_the_event_that_breaks_the_sink(tmp_path: Path) -> None:
    """An event the sink cannot encode goes back alone; its batch neighbour is delivered."""
    config = _config(tmp_path)
    writer = DeadLetterWriter(config.data_dir, "all")
    writer.write([(_ev(i), "first failure") for i in range(4)])
    sink = FlakySink(poison="m2")
    sink.first = False
    result = await replay_dead_letters(config, "all", sink)
    assert (result.resent, result.failed_again) == (3, 1)
    assert sorted(sink.sent) == ["m0", "m1", "m3"]
    [entry] = list(read_dead_letters(writer.path))
    assert entry["event"]["record"]["message"] == "m2"
    assert entry["reason"] == "unexpected TypeError: cannot encode" and "replayed" in entry


def _deep(n: int) -> dict[str, Any]:
    d: dict[str, Any] = {"leaf": 1}
    for _ in range(n):
        d = {"x": d}
    return d


@pytest.mark.parametrize("record", [
    _deep(300),
    {("tuple", "key"): 1},
    {"s": "lone \udc80 surrogate"},
    {"x": float("nan"), 1: "int key"},
])
def test_writer_never_raises_on_unencodable_records(tmp_path: Path, record: dict[str, Any]) -> None:
    writer = DeadLetterWriter(tmp_path, "all")
    writer.write([(Event(record, "raw \udcff line", 5, {"source": "app"}), "reason \ud800"), (_ev(1), "ok")])
    entries = list(read_dead_letters(writer.path))
    assert len(entries) == 2 and "error" not in entries[0]
    assert entries[0]["event"]["ts_ns"] == 5 and entries[0]["sink"] == "all"
    assert "raw" in entries[0]["event"] and entries[0]["reason"].startswith("reason")
    assert entries[1]["event"]["record"] == {"message": "m1"}


@pytest.mark.anyio
async def test_replays_racing_a_writer_thread_lose_and_repeat_nothing(tmp_path: Path) -> None:
    config = _config(tmp_path)
    writer = DeadLetterWriter(config.data_dir, "all")
    total = 400

    def write_all() -> None:
        for i in range(total):
            writer.write([(_ev(i), "failure")])

    sink = GatedSink(_open_gate())
    done = False

    async def replay_until_done() -> None:
        while not done:
            await replay_dead_letters(config, "all", sink)
            await asyncio.sleep(0)  # let the writer thread's completion be seen

    async with anyio.create_task_group() as tg:
        tg.start_soon(replay_until_done)
        await anyio.to_thread.run_sync(write_all)
        done = True
    await replay_dead_letters(config, "all", sink)
    assert sorted(sink.sent) == sorted(f"m{i}" for i in range(total))
    assert _messages(writer.path) == []
