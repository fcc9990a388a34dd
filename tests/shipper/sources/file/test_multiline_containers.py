"""Multiline grouping of CRI and docker container logs: per stream, never across JSON, checkpoint-safe."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from shipper import metrics
from shipper.event import Event
from shipper.sources.file.config import FileSourceConfig
from shipper.sources.file.source import FileSource
from shipper.sources.file.tailer import Tailer
from shipper.sources.records import parse_rfc3339_ns
from tests.factories import cri_line, cri_time, docker_line
from tests.shipper.sources.file._support import Collector, run_until

K8S = {"namespace": "ecvi", "pod_name": "worker-1", "container_name": "worker", "container_id": "c" * 64}
TRACEBACK = [
    "ERROR task failed",
    "Traceback (most recent call last):",
    '  File "/app/tasks.py", line 12, in run',
    "    verify(company)",
    "ValueError: bad registration number",
]
_clock = itertools.count()


def ts() -> str:
    """A runtime time, each a second after the one before."""
    return cri_time(1_735_689_600_123_456_789 + next(_clock) * 1_000_000_000)


def ts_ns(text: str) -> int:
    ns = parse_rfc3339_ns(text)
    assert ns is not None
    return ns


def cri(msg: str, stream: str = "stderr", tag: str = "F", at: str | None = None) -> bytes:
    return cri_line(msg, tag, stream, at or ts()).encode()


def docker(log: str, stream: str = "stderr", at: str | None = None) -> bytes:
    return docker_line(log, stream, at or ts()).encode()


def jline(**fields: Any) -> str:
    return json.dumps({"timestamp": "2025-02-03T04:05:06.789Z", "level": "INFO", **fields})


@pytest.fixture
def tailer(tmp_path: Path) -> Iterator[Callable[..., Tailer]]:
    """``tailer(data, offset=0, **source_options)``: a tailer over a file holding ``data``."""
    opened: list[Tailer] = []
    path = tmp_path / f"worker-1_ecvi_worker-{'c' * 64}.log"

    def make(data: bytes | None = None, offset: int = 0, **kw: Any) -> Tailer:
        if data is not None:
            path.write_bytes(data)
        opts: dict[str, Any] = {"type": "file", "include": [str(path)], "format": "cri",
                                "multiline": {"timeout_ms": 1000}}
        opts.update(kw)
        fd = os.open(path, os.O_RDONLY)
        t = Tailer("ml", str(path), fd, 1, 2, 3, offset, 0, FileSourceConfig.model_validate(opts), "node-1",
                   dict(K8S))
        opened.append(t)
        return t

    yield make
    for t in opened:
        t.close()


def read(t: Tailer, flush: bool = False) -> list[Event]:
    out: list[Event] = []
    t.read(out, 1 << 40)
    if flush:
        t.flush_group(out)
    return out


def raws(events: list[Event]) -> list[str]:
    return [e.raw for e in events]


# -- grouping -------------------------------------------------------------------------------------


def test_cri_traceback_on_stderr_is_one_event_and_stdout_json_between_is_not_merged(
        tailer: Callable[..., Tailer]) -> None:
    first = ts()
    data = cri(jline(message="a", seq=1), "stdout") + cri(TRACEBACK[0], at=first)
    for i, line in enumerate(TRACEBACK[1:]):
        data += cri(line) + cri(jline(message="b", seq=2 + i), "stdout")
    data += cri("INFO next task")
    t = tailer(data)

    events = read(t)
    # The JSON lines went at once, each alone and parsed; the traceback ended at "INFO next".
    assert len(events) == 6
    assert [e.record.get("seq") for e in events[:-1]] == [1, 2, 3, 4, 5]
    assert {e.ts_ns for e in events[:-1]} == {1738555506789000000}  # the record's own time
    group = events[-1]
    assert group.raw == "\n".join(TRACEBACK)
    assert group.record == {"message": "\n".join(TRACEBACK)}
    assert group.meta["stream"] == "stderr"
    assert group.ts_ns == ts_ns(first)  # the first line's time
    assert group.meta["offset"] == len(cri(jline(message="a", seq=1), "stdout"))
    assert group.meta["kubernetes"] == K8S and "truncated" not in group.meta
    assert all(e.meta["stream"] == "stdout" for e in events[:-1])
    assert t.pending_group  # "INFO next task" waits for its own continuation
    assert raws(read(t, flush=True)) == ["INFO next task"]
    assert not t.pending_group


def test_partial_pieces_inside_a_traceback_line_are_joined_per_stream(tailer: Callable[..., Tailer]) -> None:
    out = jline(message="between")
    data = (cri(TRACEBACK[1]) + cri('  File "/app/ta', tag="P") + cri(out[:12], "stdout", "P")
            + cri('sks.py", line 12,', tag="P") + cri(out[12:], "stdout") + cri(" in run")
            + cri(TRACEBACK[3]) + cri(TRACEBACK[4]))
    t = tailer(data)
    events = read(t)
    # stdout's piece joins stdout's next piece, stderr's joins stderr's: nothing crosses streams.
    assert raws(events) == [out] and events[0].record["message"] == "between"
    assert t.safe_offset == 0  # the traceback is still open
    assert raws(read(t, flush=True)) == ["\n".join(TRACEBACK[1:])]


def test_docker_json_file_traceback_with_partial_lines(tailer: Callable[..., Tailer]) -> None:
    first = ts()
    data = docker(TRACEBACK[0] + "\n", at=first) + docker(TRACEBACK[1] + "\n")
    data += docker('  File "/app/tasks.py", ') + docker(jline(message="out") + "\n", "stdout")
    data += docker("line 12, in run\n") + docker(TRACEBACK[3] + "\r\n") + docker(TRACEBACK[4] + "\n")
    data += docker(jline(message="after") + "\n")
    events = read(tailer(data, format="docker"))
    assert raws(events) == [jline(message="out"), "\n".join(TRACEBACK), jline(message="after")]
    assert events[1].ts_ns == ts_ns(first) and events[1].meta["stream"] == "stderr"
    assert events[2].record["message"] == "after"


def test_an_unfinished_line_at_the_end_of_a_rotated_file_counts_as_whole(tailer: Callable[..., Tailer]) -> None:
    t = tailer(cri(TRACEBACK[0]) + cri(TRACEBACK[1]) + cri('  File "/app/x.py"', tag="P"))
    assert read(t) == [] and t.pending_group
    out: list[Event] = []
    t.flush_group(out)  # what the source does once a rotated file is read to its end
    assert raws(out) == ["\n".join(TRACEBACK[:2]) + '\n  File "/app/x.py"']
    assert not t.pending_group and t.safe_offset == os.path.getsize(t.path)


def test_max_lines_bounds_a_group(tailer: Callable[..., Tailer]) -> None:
    events = read(tailer(b"".join(cri(x) for x in TRACEBACK), multiline={"max_lines": 3}), flush=True)
    assert raws(events) == ["\n".join(TRACEBACK[:3]), "\n".join(TRACEBACK[3:])]


def test_max_line_bytes_bounds_a_group_and_flags_it_truncated(tailer: Callable[..., Tailer]) -> None:
    before = metrics.REGISTRY.get_sample_value(
        "ecvi_shipper_input_errors_total", {"source": "ml", "reason": "line_too_long"}) or 0
    lines = [TRACEBACK[1]] + [f'  File "/app/m{i}.py", line {i}, in f{i}' for i in range(40)] + ["KeyError: x"]
    events = read(tailer(b"".join(cri(x) for x in lines) + cri("next"), max_line_bytes=256))
    assert len(events) == 1
    assert events[0].raw == "\n".join(lines)[:256] and events[0].meta["truncated"] is True
    after = metrics.REGISTRY.get_sample_value(
        "ecvi_shipper_input_errors_total", {"source": "ml", "reason": "line_too_long"})
    assert after == before + 1  # once per group, not once per dropped line


def test_timeout_flushes_only_the_quiet_streams_group(tailer: Callable[..., Tailer], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    t = tailer(b"".join(cri(x) for x in TRACEBACK[:3]) + cri("plain out", "stdout", "P"),
               multiline={"timeout_ms": 200})
    assert read(t) == [] and t.pending_group
    now[0] += 0.1
    with open(t.path, "ab") as f:
        f.write(cri(" line", "stdout"))
    assert read(t) == []  # 100 ms: both streams still wait
    now[0] += 0.15
    with open(t.path, "ab") as f:
        f.write(cri("  more out", "stdout"))
    # stderr quiet for 250 ms: its group is done; stdout's group goes on.
    assert raws(read(t)) == ["\n".join(TRACEBACK[:3])]
    assert t.pending_group
    now[0] += 0.2
    assert raws(read(t)) == ["plain out line\n  more out"]
    assert not t.pending_group


def test_custom_start_pattern(tailer: Callable[..., Tailer]) -> None:
    lines = ["2025-01-01 12:00:00 start one", "detail a", "{not json", "2025-01-01 12:00:01 start two",
             "[1, 2]", "2025-01-01 12:00:02 three"]
    events = read(tailer(b"".join(cri(x) for x in lines), multiline={"start_pattern": r"^\d{4}-\d\d-\d\d "}),
                  flush=True)
    assert raws(events) == ["\n".join(lines[:3]), "\n".join(lines[3:5]), lines[5]]


def test_a_json_object_is_never_merged(tailer: Callable[..., Tailer]) -> None:
    obj = '{"message": "x", "n": 1}'
    lines = [TRACEBACK[1], obj, "    indented after json", obj]
    events = read(tailer(b"".join(cri(x) for x in lines), multiline={"start_pattern": "^NEVER"}), flush=True)
    # Even a start pattern that would swallow everything does not swallow a JSON object.
    assert raws(events) == [TRACEBACK[1], obj, "    indented after json", obj]
    assert events[1].record == {"message": "x", "n": 1} and events[3].record == {"message": "x", "n": 1}
    assert events[2].record == {"message": "    indented after json"}


def test_hostile_stream_names_share_one_slot_and_never_crash(tailer: Callable[..., Tailer]) -> None:
    data = b"".join(docker(f"x{i}\n", stream=f"s{i}") for i in range(1000))
    data += b'{"log": "dict stream\\n", "stream": {"a": 1}, "time": "2025-01-01T00:00:00Z"}\n'
    data += b'{"log": "list stream\\n", "stream": [1], "time": "2025-01-01T00:00:00Z"}\n'
    t = tailer(data, format="docker", multiline={"start_pattern": "^x"})
    events = read(t, flush=True)
    assert len(events) == 1000  # "dict stream" and "list stream" continued x999's group
    assert events[-1].raw == "x999\ndict stream\nlist stream"
    assert len(t._streams._streams) == 1  # type: ignore[union-attr]


def test_kubernetes_metadata_replaced_while_a_group_waits(tailer: Callable[..., Tailer]) -> None:
    t = tailer(b"".join(cri(x) for x in TRACEBACK))
    assert read(t) == []
    t.set_kubernetes({"namespace": "ecvi", "pod_name": "worker-1", "labels": {"app": "w"}})
    (event,) = read(t, flush=True)
    assert event.meta["kubernetes"]["labels"] == {"app": "w"}


# -- checkpoints ----------------------------------------------------------------------------------


def _interleaved_file(n: int) -> tuple[bytes, list[str]]:
    """stderr tracebacks with stdout JSON and P-split lines between; every line unique."""
    data, lines = b"", []
    for i in range(n):
        tb = [f"ERROR job {i}", TRACEBACK[1], f'  File "/app/j{i}.py", line {i}', f"RuntimeError: {i}"]
        for j, line in enumerate(tb):
            if j == 2:
                data += cri(line[:9], tag="P") + cri(line[9:])
            else:
                data += cri(line)
            out = jline(message=f"out {i}.{j}")
            data += cri(out, "stdout")
            lines += [line, out]
    return data, list(dict.fromkeys(lines))


def _count_lines(events: list[Event], lines: list[str]) -> Counter[str]:
    seen: Counter[str] = Counter()
    for e in events:
        for part in e.raw.split("\n"):
            seen[part] += 1
    return Counter({x: seen[x] for x in lines})


def test_a_restart_from_the_checkpoint_never_loses_a_line_of_a_pending_group(
        tailer: Callable[..., Tailer]) -> None:
    data, lines = _interleaved_file(4)
    cuts = [i + 1 for i, b in enumerate(data) if b == ord("\n")]
    for cut in cuts:
        # Killed after reading ``cut`` bytes: what it emitted was delivered, then the checkpoint
        # was saved; nothing pending was flushed. The restart reads the whole file.
        first = tailer(data[:cut])
        delivered = read(first)
        checkpoint = first.safe_offset
        second = tailer(data, offset=checkpoint)
        delivered += read(second, flush=True)
        counts = _count_lines(delivered, lines)
        assert min(counts.values()) >= 1, (cut, checkpoint, [x for x, c in counts.items() if c == 0])
        assert checkpoint <= cut


@pytest.mark.anyio
async def test_file_source_stopped_mid_group_resumes_without_loss(tmp_path: Path) -> None:
    d = tmp_path / "logs"
    d.mkdir()
    path = d / "c.log"
    data, lines = _interleaved_file(3)
    path.write_bytes(data + cri("ERROR held", tag="F") + cri(TRACEBACK[1]))
    options = {"type": "file", "include": [str(d / "*.log")], "format": "cri", "glob_interval_secs": 0.05,
               "poll_interval_secs": 0.01, "multiline": {"timeout_ms": 60000}}
    cfg = FileSourceConfig.model_validate(options)
    col = Collector()
    first = FileSource("ml", cfg, col, tmp_path / "data")
    # Stops (no flush) while stderr's last group waits: it is in no delivered event yet.
    await run_until(first, lambda: len(col.events) >= 3 * 4 + 3)  # stdout JSON + 3 groups
    assert not any("ERROR held" in e.raw for e in col.events)
    before = len(col.events)
    with path.open("ab") as f:
        f.write(cri("INFO later"))
    second = FileSource("ml", cfg, col, tmp_path / "data")
    await run_until(second, lambda: any("ERROR held" in e.raw for e in col.events[before:]))
    counts = _count_lines(col.events, [*lines, "ERROR held"])
    assert min(counts.values()) >= 1
    held = next(e for e in col.events if e.raw.startswith("ERROR held"))
    assert held.raw == "ERROR held\n" + TRACEBACK[1]


# -- without multiline: exactly as before ---------------------------------------------------------

# Digest of the events the tailer made of _mixed_corpus before container grouping existed, except
# that a partial line now joins only pieces of its own stream (before, a stdout line written between
# two stderr pieces was glued into the stderr line: 120 events of each corpus differed, only those).
# (format, read_chunk_bytes) -> (events, sha256); see _digest.
GOLDEN = {
    ("cri", 4096): (661, "02bcb974f8c246aa0978ed7a3ac4c4a5d8e4d9fc8c99ab5295f4c4a2b2c546e5"),
    ("cri", 262144): (661, "02bcb974f8c246aa0978ed7a3ac4c4a5d8e4d9fc8c99ab5295f4c4a2b2c546e5"),
    ("docker", 4096): (540, "0644fad3a41ee4d4a11b320a0c03468648019b1eb95b5d7070f01115447b5e86"),
    ("docker", 262144): (540, "0644fad3a41ee4d4a11b320a0c03468648019b1eb95b5d7070f01115447b5e86"),
}


def _mixed_corpus(fmt: str) -> bytes:
    """P/F partials (also interleaved across streams), JSON and plain lines, a traceback, invalid
    UTF-8, CR endings, lines over max_line_bytes (300), bad lines, and an unfinished last line."""
    at = "2025-01-01T00:00:00.5Z"
    rec = jline(message="m" * 40, request_id="r" * 32)
    out: list[bytes] = []
    for i in range(60):
        if fmt == "cri":
            out += [cri(rec, "stdout", at=at), cri(f"plain {i}", at=at), cri(rec[:30], "stdout", "P", at=at),
                    cri(rec[30:], "stdout", at=at), cri("head of err ", tag="P", at=at),
                    cri("interleaved", "stdout", at=at), cri("tail of err", at=at),
                    cri(TRACEBACK[1], at=at), cri(TRACEBACK[2], at=at), cri("x" * (350 + i), at=at),
                    b"2025-01-01T00:00:00Z stdout F caf\xe9 \xff\n", cri("cr line\r", at=at),
                    b"2025-01-01T00:00:00Z stdout F\n", b"not a cri line\n", cri(rec, "stdout", "P", at=at)]
        else:
            out += [docker(rec + "\n", "stdout", at), docker(f"plain {i}\n", at=at),
                    docker(rec[:30], "stdout", at), docker(rec[30:] + "\n", "stdout", at),
                    docker("head of err ", at=at), docker("interleaved\n", "stdout", at),
                    docker("tail of err\n", at=at), docker(TRACEBACK[1] + "\n", at=at),
                    docker("y" * (300 + i) + "\n", at=at), docker("cr line\r\n", at=at),
                    b'{"log": "caf\xe9 \xff\\n", "stream": "stdout", "time": "2025-01-01T00:00:00Z"}\n',
                    b'["not", "docker"]\n', b"not json\n",
                    b'{"log": "no stream\\n", "time": "2025-01-01T00:00:00Z"}\n']
    return b"".join(out) + (b"2025-01-01T00:00:00Z stdout F unfinished" if fmt == "cri" else b'{"log": "unf')


def _digest(events: list[Event]) -> str:
    rows = [(e.raw, e.ts_ns, {k: v for k, v in e.meta.items() if k != "file"}, e.record, e.derived)
            for e in events]
    return hashlib.sha256(orjson.dumps(rows, option=orjson.OPT_SORT_KEYS)).hexdigest()


@pytest.mark.parametrize(("fmt", "chunk"), sorted(GOLDEN))
def test_without_multiline_container_events_are_unchanged(tailer: Callable[..., Tailer], fmt: str,
                                                          chunk: int) -> None:
    t = tailer(_mixed_corpus(fmt), format=fmt, multiline=None, max_line_bytes=300, read_chunk_bytes=chunk)
    events = read(t, flush=True)
    assert (len(events), _digest(events)) == GOLDEN[(fmt, chunk)]


@pytest.mark.parametrize("fmt", ["cri", "docker"])
def test_without_multiline_partial_lines_join_only_their_own_stream(tailer: Callable[..., Tailer], fmt: str) -> None:
    if fmt == "cri":
        data = cri("head of err ", "stderr", "P") + cri("between", "stdout") + cri("tail of err", "stderr")
    else:
        data = docker("head of err ", "stderr") + docker("between\n", "stdout") + docker("tail of err\n", "stderr")
    t = tailer(data, format=fmt, multiline=None)
    events = read(t)
    assert sorted((e.raw, e.meta["stream"]) for e in events) == [
        ("between", "stdout"), ("head of err tail of err", "stderr")]
    assert t.safe_offset == len(data)


def test_a_pending_partial_holds_the_checkpoint_at_its_first_piece(tailer: Callable[..., Tailer]) -> None:
    t = tailer(cri("head of err ", "stderr", "P") + cri("between", "stdout"), multiline=None)
    assert raws(read(t)) == ["between"]
    assert t.safe_offset == 0


def test_a_docker_stream_that_is_not_a_string_is_dropped(tailer: Callable[..., Tailer]) -> None:
    t = tailer(b'{"log": "x\\n", "stream": {"a": 1}, "time": "2025-01-01T00:00:00Z"}\n', format="docker",
               multiline=None)
    (e,) = read(t)
    assert e.raw == "x" and "stream" not in e.meta


def test_a_message_shaped_like_an_object_is_alone(tailer: Callable[..., Tailer]) -> None:
    t = tailer(cri(TRACEBACK[0]) + cri("{not: json}") + cri(TRACEBACK[1]) + cri('{"a": 1}  '))
    events = read(t, flush=True)
    assert raws(events) == [TRACEBACK[0], "{not: json}", TRACEBACK[1], '{"a": 1}  ']
