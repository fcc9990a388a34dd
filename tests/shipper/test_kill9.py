"""At-least-once across SIGKILL: every line written reaches the sink, whatever moment we die at."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

TOTAL = 200_000


def _writer(path: Path, total: int, stop: threading.Event) -> None:
    """Numbered CRI lines at a steady rate, rotating by rename every ~2 MiB."""
    f = path.open("a")
    written = rotations = 0
    size = 0
    while written < total and not stop.is_set():
        for _ in range(2000):
            rec = orjson.dumps({"timestamp": "2025-01-01T00:00:00.000Z", "level": "INFO",
                                "logger": "w", "message": "numbered", "n": written}).decode()
            line = f"2025-01-01T00:00:00.000000000Z stdout F {rec}\n"
            f.write(line)
            size += len(line)
            written += 1
            if written >= total:
                break
        f.flush()
        if size > 2 * 1024 * 1024:
            f.close()
            rotations += 1
            os.rename(path, path.with_name(f"{path.name}.{rotations}"))
            f = path.open("a")
            size = 0
        time.sleep(0.01)
    f.close()


def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "shipper.cli", "ship", "--config", str(config), "--log-level", "WARNING"],
        stdout=subprocess.DEVNULL, stderr=log.open("ab"), stdin=subprocess.DEVNULL,
    )


def _count(out_dir: Path) -> Counter[int]:
    seen: Counter[int] = Counter()
    for p in out_dir.glob("*.ndjson"):
        with p.open("rb") as f:
            for line in f:
                seen[orjson.loads(line)["n"]] += 1
    return seen


@pytest.mark.reliability
def test_sigkill_three_times_loses_nothing(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    out = tmp_path / "out"
    config = tmp_path / "shipper.yaml"
    config.write_text(f"""
data_dir: {tmp_path}/data
api: {{enabled: false}}
sources:
  app: {{type: file, include: ["{logs}/app.log*"], format: cri, glob_interval_secs: 0.2,
         rotate_wait_secs: 2}}
sinks:
  out: {{type: file, inputs: [app], path: "{out}/out.ndjson",
         batch: {{max_events: 500, timeout_secs: 0.05}}}}
""")
    stop = threading.Event()
    writer = threading.Thread(target=_writer, args=(logs / "app.log", TOTAL, stop))
    shipper_log = tmp_path / "shipper.log"
    proc = _start(config, shipper_log)
    writer.start()
    kills = 0
    rng = random.Random(7)
    try:
        while kills < 3:
            time.sleep(rng.uniform(0.5, 2.0))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            proc = _start(config, shipper_log)
        writer.join(120)
        deadline = time.time() + 120
        while time.time() < deadline:
            if len(_count(out)) >= TOTAL:
                break
            time.sleep(0.5)
    finally:
        stop.set()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    seen = _count(out)
    missing = [n for n in range(TOTAL) if n not in seen]
    duplicates = sum(c - 1 for c in seen.values())
    print(f"\nkill -9 x{kills}: {TOTAL} written, {len(seen)} distinct delivered, "
          f"{len(missing)} missing, {duplicates} duplicates")
    assert not missing, f"{len(missing)} lines lost, first {missing[:10]}; log: {shipper_log.read_text()[-2000:]}"
