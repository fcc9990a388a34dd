"""Paths matching ``include`` that are not regular files: skipped with a reason, never read, never blocking."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from shipper import metrics
from shipper.event import pack_events, unpack_events
from shipper.sources.file.config import FileSourceConfig
from shipper.sources.file.paths import expand
from shipper.sources.file.skipped import SkippedPaths
from shipper.sources.file.source import FileSource
from tests.factories import cri_line
from tests.shipper.sources.file._support import Collector, cfg, run_until

REPO = Path(__file__).resolve().parents[4]


def text_cfg(include: str) -> FileSourceConfig:
    """Plain lines, each its own event at once (no wait for a traceback to continue)."""
    return cfg(include, format="text", multiline={"timeout_ms": 10})


def skipped(source: str, reason: str) -> float:
    return metrics.REGISTRY.get_sample_value(
        "ecvi_shipper_files_skipped_total", {"source": source, "reason": reason}) or 0.0


def bytes_read(source: str) -> float:
    return metrics.REGISTRY.get_sample_value("ecvi_shipper_bytes_received_total", {"source": source}) or 0.0


class FifoWatchdog:
    """After ``after`` seconds, keeps opening the FIFOs' write ends, freeing readers stuck in ``open()``.

    ``fired`` tells whether it had to: the code under test blocked on a FIFO.
    """

    def __init__(self, fifos: Path | list[Path], after: float) -> None:
        self.fifos = fifos if isinstance(fifos, list) else [fifos]
        self.after, self.fired = after, False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if self._done.wait(self.after):
            return
        self.fired = True
        while not self._done.wait(0.05):
            self._release()

    def _release(self) -> None:
        for fifo in self.fifos:
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO: nobody is waiting to read
            except OSError:
                continue
            os.close(fd)

    def finish(self) -> None:
        self._done.set()
        self._thread.join()
        self._release()


class Ticker:
    """A task that records the longest time the event loop went without running it."""

    def __init__(self) -> None:
        self.max_gap = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(0.01)
            now = loop.time()
            self.max_gap = max(self.max_gap, now - last)
            last = now

    def start(self) -> None:
        self._task = asyncio.create_task(self._tick())

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def wait_events(col: Collector, n: int, timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while len(col.events) < n and loop.time() < end:
        await asyncio.sleep(0.02)


async def scenario(src: FileSource, act: Callable[[], Awaitable[None]]) -> tuple[float, float]:
    """Runs the source while ``act`` plays its part; returns the longest loop stall and how long stop() took."""
    ticker = Ticker()
    ticker.start()
    task = asyncio.create_task(src.run())
    try:
        await act()
    finally:
        t0 = time.monotonic()
        await src.stop()
        await asyncio.wait_for(task, 5)
        took = time.monotonic() - t0
        await ticker.stop()
    return ticker.max_gap, took


def run_watched(src: FileSource, act: Callable[[], Awaitable[None]], watchdog: FifoWatchdog) -> tuple[float, float]:
    try:
        return asyncio.run(asyncio.wait_for(scenario(src, act), 15))
    finally:
        watchdog.finish()
        src.close()


def test_directory_named_like_a_log_is_skipped_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "a.log").write_text("one\ntwo\n")
    (tmp_path / "x.log").mkdir()
    col = Collector()
    src = FileSource("nr-dir", text_cfg(str(tmp_path / "*.log")), col, tmp_path / "data")

    async def go() -> None:
        await run_until(src, lambda: len(col.events) >= 2, timeout=3)
        assert col.messages() == ["one", "two"]
        await run_until(src, lambda: False, timeout=0.3)  # several more scans

    with caplog.at_level(logging.WARNING, logger="shipper.sources.file"):
        asyncio.run(asyncio.wait_for(go(), 10))
    assert skipped("nr-dir", "directory") == 1  # once per path, not once per scan
    warned = [r for r in caplog.records if "x.log" in r.getMessage()]
    assert len(warned) == 1 and "directory" in warned[0].getMessage()


def test_fifo_at_start_does_not_block_the_loop(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_text("hello\n")
    fifo = tmp_path / "p.log"
    os.mkfifo(fifo)
    watchdog = FifoWatchdog(fifo, after=3.0)
    col = Collector()
    src = FileSource("nr-fifo0", text_cfg(str(tmp_path / "*.log")), col, tmp_path / "data")

    async def act() -> None:
        await wait_events(col, 1, timeout=5)
        await asyncio.sleep(0.3)  # a few more scans with the FIFO still there

    stall, stop_took = run_watched(src, act, watchdog)
    assert not watchdog.fired, "the source blocked opening the FIFO"
    assert col.messages() == ["hello"]
    assert stall < 0.5 and stop_took < 1.0
    assert skipped("nr-fifo0", "fifo") == 1


def test_fifo_created_later_does_not_block_discovery(tmp_path: Path) -> None:
    a = tmp_path / "a.log"
    a.write_text("first\n")
    fifo = tmp_path / "p.log"
    watchdog = FifoWatchdog(fifo, after=4.0)
    col = Collector()
    src = FileSource("nr-fifo1", text_cfg(str(tmp_path / "*.log")), col, tmp_path / "data")

    async def act() -> None:
        await wait_events(col, 1)
        os.mkfifo(fifo)
        await asyncio.sleep(0.3)  # the opener has met the FIFO by now
        (tmp_path / "b.log").write_text("from b\n")
        with a.open("a") as f:
            f.write("second\n")
        await wait_events(col, 3)

    stall, stop_took = run_watched(src, act, watchdog)
    assert not watchdog.fired, "discovery blocked opening the FIFO"
    assert sorted(col.messages()) == ["first", "from b", "second"]
    assert stall < 0.5 and stop_took < 1.0
    assert skipped("nr-fifo1", "fifo") == 1


def test_symlink_to_dev_zero_is_never_read(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_text("real\n")
    (tmp_path / "z.log").symlink_to("/dev/zero")
    col = Collector()
    src = FileSource("nr-zero", text_cfg(str(tmp_path / "*.log")), col, tmp_path / "data")
    cpu0 = time.process_time()
    asyncio.run(asyncio.wait_for(run_until(src, lambda: False, timeout=1.0), 10))
    cpu = time.process_time() - cpu0
    src.close()
    assert col.messages() == ["real"]
    assert bytes_read("nr-zero") == len("real\n")  # not one byte of /dev/zero
    assert skipped("nr-zero", "device") == 1
    assert cpu < 0.6, f"{cpu:.2f}s of CPU in 1s of idle tailing"


def _loop_scenario(root: str) -> None:
    """Two symlink loops under ``**``; prints what was shipped (run in a child so a hang can be killed)."""
    base = Path(root)
    logs = base / "logs"
    (logs / "sub").mkdir(parents=True)
    (logs / "a.log").write_text("in a\n")
    (logs / "sub" / "b.log").write_text("in b\n")
    (logs / "up").symlink_to(logs)
    (logs / "sub" / "back").symlink_to("..")
    col = Collector()
    src = FileSource("nr-loop", text_cfg(str(logs / "**" / "*.log")), col, base / "data")
    asyncio.run(asyncio.wait_for(run_until(src, lambda: len(col.events) >= 2, timeout=3), 10))
    src.close()
    print(json.dumps({"messages": sorted(col.messages()), "files": sorted(e.meta["file"] for e in col.events),
                      "loops": skipped("nr-loop", "loop")}))


def test_symlink_loops_under_double_star_end(tmp_path: Path) -> None:
    code = f"from tests.shipper.sources.file.test_nonregular import _loop_scenario; _loop_scenario({str(tmp_path)!r})"
    try:
        out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("discovery did not finish with two symlink loops under **")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["messages"] == ["in a", "in b"]
    assert result["files"] == [str(tmp_path / "logs" / "a.log"), str(tmp_path / "logs" / "sub" / "b.log")]
    assert result["loops"] == 2


def test_kubelet_symlink_to_regular_file_is_followed(tmp_path: Path) -> None:
    pod_dir = tmp_path / "pods" / "ecvi_api-7d9f_0123-uid" / "backend"
    pod_dir.mkdir(parents=True)
    (pod_dir / "0.log").write_text(cri_line("hello"))
    containers = tmp_path / "containers"
    containers.mkdir()
    link = containers / f"api-7d9f_ecvi_backend-{'b' * 64}.log"
    link.symlink_to(pod_dir / "0.log")
    col = Collector()
    src = FileSource("nr-k8s", cfg(str(containers / "*.log"), format="cri"), col, tmp_path / "data")
    asyncio.run(asyncio.wait_for(run_until(src, lambda: len(col.events) >= 1, timeout=3), 10))
    assert col.messages() == ["hello"]
    assert col.events[0].meta["file"] == str(link)
    assert col.events[0].meta["kubernetes"] == {"namespace": "ecvi", "pod_name": "api-7d9f",
                                                "container_name": "backend", "container_id": "b" * 64}
    assert sum(skipped("nr-k8s", r) for r in ("directory", "fifo", "device", "socket", "loop", "unreadable")) == 0


def test_file_replaced_by_fifo_while_tailed(tmp_path: Path) -> None:
    a = tmp_path / "a.log"
    a.write_text("before\n")
    watchdog = FifoWatchdog(a, after=4.0)
    col = Collector()
    src = FileSource("nr-swap", text_cfg(str(tmp_path / "*.log")), col, tmp_path / "data")

    async def act() -> None:
        await wait_events(col, 1)
        with a.open("a") as f:  # the writer still holds the old file after the path is swapped
            a.unlink()
            os.mkfifo(a)
            f.write("after\n")
        (tmp_path / "b.log").write_text("from b\n")
        await wait_events(col, 3)

    stall, stop_took = run_watched(src, act, watchdog)
    assert not watchdog.fired, "the source blocked opening the FIFO"
    assert sorted(col.messages()) == ["after", "before", "from b"]  # the old file read to its end
    assert stall < 0.5 and stop_took < 1.0
    assert skipped("nr-swap", "fifo") == 1


def test_unreadable_file_skipped_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "a.log").write_text("ok\n")
    secret = tmp_path / "secret.log"
    secret.write_text("hidden\n")
    real_open = os.open

    def no_access(path: object, flags: int, *args: object, **kw: object) -> int:
        if os.fspath(path) == str(secret):  # type: ignore[call-overload]
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", no_access)  # the tests run as root, where chmod 000 changes nothing
    col = Collector()
    src = FileSource("nr-acces", text_cfg(str(tmp_path / "*.log")), col, tmp_path / "data")
    with caplog.at_level(logging.WARNING, logger="shipper.sources.file"):
        asyncio.run(asyncio.wait_for(run_until(src, lambda: False, timeout=0.4), 10))
    assert col.messages() == ["ok"]
    assert skipped("nr-acces", "unreadable") == 1
    assert len([r for r in caplog.records if "secret.log" in r.getMessage()]) == 1


def test_name_with_invalid_utf8_is_shipped_and_checkpointed(tmp_path: Path) -> None:
    raw_name = os.fsencode(tmp_path) + b"/caf\xe9.log"
    with open(raw_name, "wb") as f:
        f.write(b"one\n")
    col = Collector()
    src = FileSource("nr-utf8", text_cfg(str(tmp_path / "*.log")), col, tmp_path / "data")
    asyncio.run(asyncio.wait_for(run_until(src, lambda: len(col.events) >= 1, timeout=3), 10))
    src.close()
    assert col.messages() == ["one"]
    assert col.events[0].meta["file"] == f"{tmp_path}/caf\\xe9.log"
    unpack_events(pack_events(col.events))  # the buffer can store it
    with open(raw_name, "ab") as f:
        f.write(b"two\n")
    col2 = Collector()
    src2 = FileSource("nr-utf8", text_cfg(str(tmp_path / "*.log")), col2, tmp_path / "data")
    asyncio.run(asyncio.wait_for(run_until(src2, lambda: len(col2.events) >= 1, timeout=3), 10))
    src2.close()
    assert col2.messages() == ["two"]  # resumed from the checkpoint


def test_many_non_regular_paths_warn_little_and_count_once(tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "a.log").write_text("ok\n")
    fifos = [tmp_path / f"p{i:03}.log" for i in range(300)]
    for fifo in fifos:
        os.mkfifo(fifo)
    watchdog = FifoWatchdog(fifos, after=4.0)
    col = Collector()
    src = FileSource("nr-many", text_cfg(str(tmp_path / "*.log")), col, tmp_path / "data")
    try:
        with caplog.at_level(logging.WARNING, logger="shipper.sources.file"):
            asyncio.run(asyncio.wait_for(run_until(src, lambda: False, timeout=0.5), 10))
    finally:
        watchdog.finish()
        src.close()
    assert not watchdog.fired, "the source blocked opening a FIFO"
    assert col.messages() == ["ok"]
    assert skipped("nr-many", "fifo") == 300  # every path counted once over many scans
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) <= 12, lines  # a few named, the rest summed up in one line
    assert any("290 more paths" in m for m in lines)


def test_skipped_paths_memory_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    memo = SkippedPaths("nr-bound", limit=50, warn_per_scan=5)
    with caplog.at_level(logging.WARNING, logger="shipper.sources.file"):
        for _scan in range(3):
            for i in range(200):
                memo.note(f"/x/{i}.log", "device")
            memo.end_scan()
    assert len(memo) == 50
    assert skipped("nr-bound", "device") == 50
    assert sum("further ones are skipped" in r.getMessage() for r in caplog.records) == 1
    memo.end_scan()  # nothing seen in this scan: all forgotten
    assert len(memo) == 0


@pytest.mark.parametrize("pattern", ["*.log", "**/*.log", "s/**/*.log", "*/*.log", "*/t/*.log", "a.log",
                                     "nope.log", "[ab].*", "**/t/*.log", ".*.log", "s/**"])
def test_expand_matches_glob_without_links(tmp_path: Path, pattern: str) -> None:
    for name in ["a.log", "b.txt", ".h.log", "s/c.log", "s/t/d.log", "s/.hid/e.log", "x.log/f"]:
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("")
    full = str(tmp_path / pattern)
    expected = sorted(p for p in glob.glob(full, recursive=True) if not (pattern.endswith("**") and os.path.isdir(p)))
    assert expand(full) == expected


def test_read_error_costs_only_that_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         caplog: pytest.LogCaptureFixture) -> None:
    a, bad = tmp_path / "a.log", tmp_path / "bad.log"
    a.write_text("a1\n")
    bad.write_text("b1\n")
    bad_ino = bad.stat().st_ino
    broken = threading.Event()
    real_pread = os.pread

    def failing_pread(fd: int, n: int, offset: int) -> bytes:
        if broken.is_set() and os.fstat(fd).st_ino == bad_ino:
            raise OSError(5, "Input/output error")  # a failing disk under one file
        return real_pread(fd, n, offset)

    monkeypatch.setattr(os, "pread", failing_pread)
    col = Collector()
    src = FileSource("nr-eio", text_cfg(str(tmp_path / "*.log")), col, tmp_path / "data")

    async def act() -> None:
        await wait_events(col, 2)
        broken.set()
        with bad.open("a") as f:
            f.write("b2\n")
        await asyncio.sleep(0.3)
        with a.open("a") as f:
            f.write("a2\n")
        await wait_events(col, 3)

    with caplog.at_level(logging.WARNING, logger="shipper.sources.file"):
        asyncio.run(asyncio.wait_for(scenario(src, act), 15))
    src.close()
    assert sorted(col.messages()) == ["a1", "a2", "b1"]
    assert skipped("nr-eio", "unreadable") == 1
    assert len([r for r in caplog.records if "bad.log" in r.getMessage()]) == 1
