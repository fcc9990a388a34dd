import asyncio
import json
import os
from pathlib import Path

import pytest

from shipper import metrics
from shipper.sources.file.source import FileSource
from tests.factories import cri_line, docker_line
from tests.shipper.sources.file._support import Collector, cfg, run_until

pytestmark = pytest.mark.anyio


async def test_cri_json_partial_lines_and_kubernetes_metadata(tmp_path: Path) -> None:
    d = tmp_path / "containers"
    d.mkdir()
    path = d / f"api-7d9f_ecvi_backend-{'a' * 64}.log"
    rec = {"timestamp": "2025-02-03T04:05:06.789Z", "level": "INFO", "logger": "app", "message": "hello"}
    body = json.dumps(rec)
    path.write_text(cri_line("plain text") + cri_line(body[:20], "P") + cri_line(body[20:40], "P")
                    + cri_line(body[40:]))
    col = Collector()
    src = FileSource("app", cfg(str(d / "*.log"), format="cri"), col, tmp_path / "data")
    await run_until(src, lambda: len(col.events) >= 2)
    assert len(col.events) == 2
    plain, joined = col.events
    assert plain.record == {"message": "plain text"}
    assert joined.record == rec  # reassembled and parsed into fields
    assert joined.ts_ns == 1738555506789000000  # the record's own timestamp wins
    assert plain.ts_ns == 1735689600123456789  # else the runtime's
    assert joined.meta["kubernetes"] == {"namespace": "ecvi", "pod_name": "api-7d9f",
                                         "container_name": "backend", "container_id": "a" * 64}
    assert joined.meta["stream"] == "stdout"
    assert plain.id != joined.id and joined.id.endswith(f":{len(cri_line('plain text'))}")


async def test_docker_partial_lines(tmp_path: Path) -> None:
    p = tmp_path / "c.log"
    p.write_text(docker_line("part one ", "stderr") + docker_line("and two\n", "stderr")
                 + docker_line('{"message": "json", "level": "ERROR"}\n', time="2025-01-01T00:00:02Z")
                 + "not json at all\n")
    col = Collector()
    src = FileSource("d", cfg(str(p), format="docker"), col, tmp_path / "data")
    await run_until(src, lambda: len(col.events) >= 2)
    assert col.messages() == ["part one and two", "json"]
    assert col.events[1].record["level"] == "ERROR"
    bad = metrics.REGISTRY.get_sample_value("ecvi_shipper_input_errors_total", {"source": "d", "reason": "bad_format"})
    assert bad == 1


async def test_text_multiline_python_traceback(tmp_path: Path) -> None:
    p = tmp_path / "t.log"
    p.write_text(
        "first line\n"
        "ERROR boom\n"
        "Traceback (most recent call last):\n"
        '  File "x.py", line 1, in <module>\n'
        "    f()\n"
        "ValueError: bad\n"
        "next line\n"
    )
    col = Collector()
    src = FileSource("t", cfg(str(p), format="text", multiline={"timeout_ms": 50}), col, tmp_path / "data")
    await run_until(src, lambda: len(col.events) >= 3)
    assert col.messages()[0] == "first line"
    assert col.messages()[1].startswith("ERROR boom\nTraceback") and col.messages()[1].endswith("ValueError: bad")
    assert col.messages()[2] == "next line"


async def test_overlong_line_truncated_and_invalid_utf8(tmp_path: Path) -> None:
    p = tmp_path / "j.log"
    with p.open("wb") as f:
        f.write(b"a" * 5000 + b"\n")
        f.write(b"caf\xe9 \xff\n")
        f.write(b"ok\n")
    col = Collector()
    src = FileSource("u", cfg(str(p), format="text", max_line_bytes=1000, read_chunk_bytes=4096), col,
                     tmp_path / "data")
    await run_until(src, lambda: len(col.events) >= 3)
    assert len(col.events) == 3
    assert len(col.events[0].raw) == 1000 and col.events[0].meta["truncated"] is True
    assert "\ufffd" in col.events[1].raw
    assert col.events[2].raw == "ok"
    assert metrics.REGISTRY.get_sample_value(
        "ecvi_shipper_input_errors_total", {"source": "u", "reason": "invalid_utf8"}) == 1


async def test_line_without_newline_is_never_read_unbounded(tmp_path: Path) -> None:
    p = tmp_path / "huge.log"
    with p.open("wb") as f:
        f.write(b"x" * (8 * 1024 * 1024))  # 8 MiB, no newline
    col = Collector()
    src = FileSource("h", cfg(str(p), format="text", max_line_bytes=65536), col, tmp_path / "data")
    await run_until(src, lambda: len(col.events) >= 1, timeout=3)
    assert len(col.events) == 1 and len(col.events[0].raw) == 65536
    assert src.tailers and all(len(t._buf) <= 65536 for t in src.tailers.values())
    assert all(t.offset == 8 * 1024 * 1024 for t in src.tailers.values())  # read through, not held


async def test_restart_resumes_from_checkpoint(tmp_path: Path) -> None:
    p = tmp_path / "r.log"
    p.write_text("".join(f"line {i}\n" for i in range(100)))
    col = Collector()
    src = FileSource("r", cfg(str(p), format="text"), col, tmp_path / "data")
    await run_until(src, lambda: len(col.events) >= 100)
    with p.open("a") as f:
        f.write("".join(f"line {i}\n" for i in range(100, 150)))
    col2 = Collector()
    src2 = FileSource("r", cfg(str(p), format="text"), col2, tmp_path / "data")
    await run_until(src2, lambda: len(col2.events) >= 50)
    assert col2.messages() == [f"line {i}" for i in range(100, 150)]


async def test_read_from_end_skips_existing_only(tmp_path: Path) -> None:
    p = tmp_path / "e.log"
    p.write_text("old\n")
    col = Collector()
    src = FileSource("e", cfg(str(tmp_path / "*.log"), format="text", read_from="end"), col, tmp_path / "data")

    task = asyncio.create_task(src.run())
    await asyncio.sleep(0.2)
    with p.open("a") as f:
        f.write("new\n")
    (tmp_path / "later.log").write_text("from a new file\n")
    for _ in range(200):
        if len(col.events) >= 2:
            break
        await asyncio.sleep(0.02)
    await src.stop()
    await task
    assert sorted(col.messages()) == ["from a new file", "new"]


_rotations = iter(range(1, 1_000_000))


def _writer_rotating(path: Path, n: int, every: int, mode: str) -> None:
    f = path.open("a")
    for i in range(n):
        f.write(f"line {i}\n")
        if i and i % every == 0:
            f.flush()
            if mode == "rename":
                f.close()
                os.rename(path, path.with_name(path.name + f".{next(_rotations)}"))
                f = path.open("a")
            else:
                # copytruncate leaves a window: lines written between the copy and the truncate
                # are lost by design. Keep the window empty here.
                f.close()
                (path.parent / f"{path.name}.{next(_rotations)}").write_bytes(path.read_bytes())
                os.truncate(path, 0)
                f = path.open("a")
    f.close()


async def test_rotation_by_rename_during_writes_loses_nothing(tmp_path: Path) -> None:
    p = tmp_path / "app.log"
    p.write_text("")
    col = Collector()
    src = FileSource("rot", cfg(str(p), format="text"), col, tmp_path / "data")

    task = asyncio.create_task(src.run())
    for chunk in range(10):
        await asyncio.to_thread(_writer_rotating, p, 1000, 300, "rename")
        await asyncio.sleep(0.01 * chunk)
    for _ in range(500):
        if len(col.events) >= 10_000:
            break
        await asyncio.sleep(0.02)
    await src.stop()
    await task
    counts: dict[str, int] = {}
    for m in col.messages():
        counts[m] = counts.get(m, 0) + 1
    assert len(col.events) == 10_000
    assert all(counts[f"line {i}"] == 10 for i in range(1000))


async def test_copytruncate_continues_from_start(tmp_path: Path) -> None:
    p = tmp_path / "ct.log"
    p.write_text("".join(f"a{i}\n" for i in range(50)))
    col = Collector()
    src = FileSource("ct", cfg(str(p), format="text"), col, tmp_path / "data")

    async with asyncio.timeout(10):
        task = asyncio.create_task(src.run())
        while len(col.events) < 50:
            await asyncio.sleep(0.02)
        os.truncate(p, 0)
        await asyncio.sleep(0.1)
        with p.open("a") as f:
            f.write("".join(f"b{i}\n" for i in range(10)))
        while len(col.events) < 60:
            await asyncio.sleep(0.02)
        await src.stop()
        await task
    assert col.messages() == [f"a{i}" for i in range(50)] + [f"b{i}" for i in range(10)]
    # Ids after the truncation differ from the ids of the same offsets before it.
    assert col.events[50].id != col.events[0].id


async def test_rotated_file_finished_after_restart(tmp_path: Path) -> None:
    p = tmp_path / "app.log"
    p.write_text("".join(f"x{i}\n" for i in range(10)))
    col = Collector()
    src = FileSource("rr", cfg(str(p), format="text"), col, tmp_path / "data")
    await run_until(src, lambda: len(col.events) >= 10)
    # While the shipper is down: more lines, then a rename rotation and a new file.
    with p.open("a") as f:
        f.write("".join(f"x{i}\n" for i in range(10, 20)))
    os.rename(p, tmp_path / "app.log.1")
    p.write_text("new0\n")
    col2 = Collector()
    src2 = FileSource("rr", cfg(str(p), format="text"), col2, tmp_path / "data")
    await run_until(src2, lambda: len(col2.events) >= 11)
    assert sorted(col2.messages()) == sorted([f"x{i}" for i in range(10, 20)] + ["new0"])


def test_a_file_rotated_in_and_out_while_the_path_was_missing_is_read(tmp_path: Path) -> None:
    # The tracked file is renamed and the path seen missing in one pass; before the next pass a new
    # file is created and renamed away too, and a third is created: the middle one must be found.
    p = tmp_path / "app.log"
    p.write_text("a0\n")
    src = FileSource("gap", cfg(str(p), format="text", glob_interval_secs=3600), Collector(), tmp_path / "data")
    try:
        src.discover()
        first = os.stat(p)
        os.rename(p, tmp_path / "app.log.1")
        src.discover()  # the path is missing now: its file is marked rotated
        p.write_text("b0\n")
        middle = os.stat(p)
        os.rename(p, tmp_path / "app.log.2")
        p.write_text("c0\n")
        assert src._opener is not None
        src._opener.scan()
        src.discover()
        keys = set(src.tailers)
        assert f"{first.st_dev}:{first.st_ino}" in keys
        assert f"{middle.st_dev}:{middle.st_ino}" in keys
        assert f"{os.stat(p).st_dev}:{os.stat(p).st_ino}" in keys
    finally:
        src.close()
