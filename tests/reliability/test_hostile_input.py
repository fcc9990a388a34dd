"""Hostile input: property tests for the line parsers and the config loader, garbage on the
forward port, and ten thousand new files at once. No crash, no hang, bounded memory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
import tracemalloc
from pathlib import Path

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shipper import metrics
from shipper.config import ConfigError, parse_config
from shipper.event import Event
from shipper.sources.file.config import FileSourceConfig
from shipper.sources.file.formats import FormatError, parse_cri, parse_docker
from shipper.sources.file.source import FileSource
from shipper.sources.forward.config import ForwardSourceConfig
from shipper.sources.forward.server import ForwardSource
from tests.reliability._harness import Summary, count_numbers, scaled

pytestmark = pytest.mark.reliability

EXAMPLES = int(scaled(300, 5000))


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.text(max_size=300))
def test_cri_parser_only_raises_format_error(line: str) -> None:
    try:
        u = parse_cri(line)
    except FormatError:
        return
    assert isinstance(u.payload, str) and isinstance(u.partial, bool)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.one_of(st.text(max_size=300),
                 st.builds(lambda log, t: f'{{"log": {log!r}, "time": {t!r}}}'.replace("'", '"'),
                           st.text(max_size=50), st.text(max_size=40))))
def test_docker_parser_only_raises_format_error(line: str) -> None:
    try:
        u = parse_docker(line)
    except FormatError:
        return
    assert isinstance(u.payload, str)


_yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20), st.floats(allow_nan=False))
_yaml_values = st.recursive(_yaml_scalars, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(st.text(max_size=12), children, max_size=4)), max_leaves=20)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(["data_dir", "api", "sources", "sinks", "transforms", "other"]),
                       _yaml_values, max_size=5))
def test_config_loader_only_raises_config_error(data: dict[str, object]) -> None:
    import yaml

    try:
        parse_config(yaml.safe_dump(data), env={})
    except ConfigError as exc:
        assert exc.problems and all(isinstance(p, str) and m for p, m in exc.problems)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.text(max_size=500))
def test_config_loader_on_arbitrary_text(text: str) -> None:
    with contextlib.suppress(ConfigError):
        parse_config(text, env={})


@pytest.mark.anyio
async def test_garbage_and_oversized_frames_on_the_forward_port(monkeypatch: pytest.MonkeyPatch) -> None:
    # Thousands of warnings would pile up in pytest's log capture and be measured as ours.
    monkeypatch.setattr(logging.getLogger("shipper.sources.forward"), "disabled", True)
    got: list[Event] = []

    async def deliver(events: list[Event]) -> None:
        got.extend(events)

    async with asyncio.timeout(300):
        # Memory bound: max_buffered_bytes for unfinished frames (counting what a half-read frame
        # really holds), plus each open connection's stream buffer and one read: 16 MiB + 256 x
        # 128 KiB = 48 MiB here, up to ~450 KiB a connection when asyncio's buffers fill.
        # Every attacker here is 127.0.0.1, so the per-peer cap is raised to the global one.
        cfg = ForwardSourceConfig(type="forward", address="127.0.0.1:0", max_frame_bytes=1024 * 1024,
                                  max_buffered_bytes=16 * 1024 * 1024, max_connections=256,
                                  max_connections_per_peer=256)
        src = ForwardSource("hostile", cfg, deliver)
        await src.start()
        rng = random.Random(3)
        tracemalloc.start()

        def attack() -> None:
            for i in range(int(scaled(200, 3000))):
                with socket.create_connection(("127.0.0.1", src.port), timeout=5) as s:
                    kind = i % 4
                    try:
                        if kind == 0:
                            s.sendall(rng.randbytes(rng.randrange(1, 4096)))
                        elif kind == 1:  # a bin header announcing 1 GiB, then nothing
                            s.sendall(b"\x93\xa3tag\xc6\x40\x00\x00\x00" + rng.randbytes(100))
                        elif kind == 2:  # a frame over max_frame_bytes
                            s.sendall(msgpack.packb(["t", [[1, {"m": "x" * (2 * 1024 * 1024)}]]]))
                        else:  # a good message: the server must still serve
                            s.sendall(msgpack.packb(["t", int(time.time()), {"message": "ok", "n": i}]))
                    except OSError:
                        pass

        await asyncio.to_thread(attack)
        good = int(scaled(200, 3000)) // 4
        for _ in range(600):  # the server may still be working through accepted connections
            if len([e for e in got if e.record.get("message") == "ok"]) >= good:
                break
            await asyncio.sleep(0.1)
        _cur, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        await src.stop()
        # 48 MiB for the server (see above) and a few MiB for the attacking client in this process.
        assert peak < 56 * 1024 * 1024, f"peak traced memory {peak / 2**20:.1f} MiB"
    good = int(scaled(200, 3000)) // 4
    assert len([e for e in got if e.record.get("message") == "ok"]) == good
    errors = sum(v for k, v in _input_errors("hostile").items())
    assert errors >= good * 2


def _input_errors(source: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for fam in metrics.REGISTRY.collect():
        for s in fam.samples:
            if s.name == "ecvi_shipper_input_errors_total" and s.labels.get("source") == source:
                out[s.labels["reason"]] = s.value
    return out


@pytest.mark.anyio
async def test_ten_thousand_new_files_at_once(tmp_path: Path) -> None:
    n_files = int(scaled(10_000, 15_000))  # the test process itself holds one descriptor per file
    logs = tmp_path / "logs"
    logs.mkdir()
    got: list[Event] = []

    async def deliver(events: list[Event]) -> None:
        got.extend(events)

    cfg = FileSourceConfig.model_validate({"type": "file", "include": [f"{logs}/*.log"], "format": "json",
                                           "glob_interval_secs": 0.2, "poll_interval_secs": 0.05})
    src = FileSource("many", cfg, deliver, tmp_path / "data")

    async def _create_and_wait(task: asyncio.Task[None]) -> None:
        for i in range(n_files):  # all appear at once, while the source runs
            (logs / f"f{i:05d}.log").write_text(f'{{"message": "hello", "n": {i}}}\n')
        start = time.time()
        while len(got) < n_files and time.time() - start < 120:
            await asyncio.sleep(0.2)
        await src.stop()
        await asyncio.wait_for(task, 30)
        src.save_checkpoints()

    task = asyncio.create_task(src.run())
    await asyncio.sleep(0.3)
    try:
        await _create_and_wait(task)
    finally:
        src.close()
    seen = count_numbers(e.raw.encode() for e in got)
    summary = Summary("many_files", n_files, {"events": seen}, notes=[f"files             {n_files}"])
    summary.write()
    assert not summary.lost("events") and summary.duplicates("events") == 0
    assert os.listdir(tmp_path / "data" / "checkpoints")
