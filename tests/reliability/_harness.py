"""Shared pieces of the reliability suite: profiles, a shipper child process, counting, summaries."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

PROFILE = os.environ.get("ECVI_RELIABILITY_PROFILE", "short")
LONG = PROFILE == "long"
SUMMARY_DIR = Path(os.environ.get("ECVI_RELIABILITY_DIR", Path(__file__).resolve().parents[2] / "var" / "reliability"))


def scaled(short: float, long: float) -> float:
    """A number for the active profile (``ECVI_RELIABILITY_PROFILE=long`` for the long one)."""
    return long if LONG else short


def wait_for(cond: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(interval)
    return cond()


def peak_rss_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


class Shipper:
    """``ecvi-logs ship`` as a child process that can be killed and restarted."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.peak_rss = 0.0

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "shipper.cli", "ship", "--config", str(self.config), "--log-level", "INFO"],
            stdout=subprocess.DEVNULL, stderr=self.log.open("ab"), stdin=subprocess.DEVNULL,
        )

    def wait_ready(self, port: int, timeout: float = 60.0) -> None:
        """Block until ``/ready`` answers 200 (the sources are reading)."""
        import urllib.request

        def ready() -> bool:
            if self.proc is None or self.proc.poll() is not None:
                raise AssertionError(f"shipper exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as r:
                    return r.status == 200
            except OSError:
                return False

        if not wait_for(ready, timeout, 0.1):
            raise AssertionError(f"shipper not ready after {timeout}s: {self.log.read_text()[-2000:]}")

    def sample(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.peak_rss = max(self.peak_rss, peak_rss_mib(self.proc.pid))

    def kill9(self) -> None:
        assert self.proc is not None
        self.sample()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.restarts += 1
        self.start()

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        self.sample()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def count_numbers(lines: Iterable[bytes], key: str = "n") -> Counter[int]:
    seen: Counter[int] = Counter()
    for line in lines:
        try:
            seen[int(orjson.loads(line)[key])] += 1
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
    return seen


def ndjson_lines(directory: Path) -> Iterable[bytes]:
    for p in sorted(directory.glob("*.ndjson")):
        with p.open("rb") as f:
            yield from f


@dataclass
class Summary:
    """The one-screen result every reliability run writes."""

    name: str
    produced: int
    delivered: dict[str, Counter[int]] = field(default_factory=dict)
    peak_rss_mib: float = 0.0
    restarts: int = 0
    notes: list[str] = field(default_factory=list)

    def lost(self, sink: str) -> list[int]:
        seen = self.delivered[sink]
        return [n for n in range(self.produced) if n not in seen]

    def duplicates(self, sink: str) -> int:
        return sum(c - 1 for c in self.delivered[sink].values() if c > 1)

    def render(self) -> str:
        rows = [f"== {self.name} (profile {PROFILE}) ==", f"events produced   {self.produced}"]
        for sink, seen in self.delivered.items():
            rows.append(f"{sink:16s}  delivered {len(seen):9d}  lost {len(self.lost(sink)):7d}  "
                        f"duplicated {self.duplicates(sink):7d}")
        rows.append(f"peak RSS          {self.peak_rss_mib:.1f} MiB")
        rows.append(f"restarts          {self.restarts}")
        rows.extend(self.notes)
        return "\n".join(rows)

    def write(self) -> str:
        text = self.render()
        SUMMARY_DIR.mkdir(parents=True, exist_ok=True)
        (SUMMARY_DIR / f"{self.name}.txt").write_text(text + "\n")
        data = {"name": self.name, "profile": PROFILE, "produced": self.produced,
                "sinks": {s: {"delivered": len(c), "lost": len(self.lost(s)), "duplicated": self.duplicates(s)}
                          for s, c in self.delivered.items()},
                "peak_rss_mib": self.peak_rss_mib, "restarts": self.restarts, "notes": self.notes}
        (SUMMARY_DIR / f"{self.name}.json").write_text(json.dumps(data, indent=2) + "\n")
        print("\n" + text)
        return text


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
