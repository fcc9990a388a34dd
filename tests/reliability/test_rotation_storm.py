"""Rotation storm: files rotated every 1 MiB as fast as the writer goes (at most four rotations a
second, see MIN_ROTATION_INTERVAL), by rename and by copytruncate.

Rename loses nothing. copytruncate can only lose what is written between logrotate's copy and
its truncate; here the copies match ``include`` so nothing is lost at all, and the bound the
shipper meets is asserted: every line is delivered, duplicates come only from re-read copies.
Leftovers of ``delaycompress`` (``app.log.N.gz``) are excluded and never read.
"""

from __future__ import annotations

import gzip
import os
import shutil
import threading
import time
from pathlib import Path

import orjson
import pytest

from tests.reliability._harness import Shipper, Summary, count_numbers, free_port, ndjson_lines, scaled, wait_for

pytestmark = pytest.mark.reliability

ROTATE_BYTES = 1024 * 1024
# A rotated file must exist for a moment to be found at all: delaycompress removes it at the next
# rotation, so rotations are at least this far apart (the writer pauses, files stay 1 MiB).
MIN_ROTATION_INTERVAL = 0.25


class Writer(threading.Thread):
    """Writes numbered JSON lines as fast as it can, rotating at ROTATE_BYTES."""

    def __init__(self, path: Path, lines: int, mode: str) -> None:
        super().__init__(daemon=True)
        self.path, self.lines, self.mode = path, lines, mode
        self.seconds = 0.0
        self.written = 0
        self.rotations = 0
        self._last_rotation = 0.0

    def _rotate(self, f):  # type: ignore[no-untyped-def]
        wait = self._last_rotation + MIN_ROTATION_INTERVAL - time.time()
        if wait > 0:
            time.sleep(wait)
        self._last_rotation = time.time()
        self.rotations += 1
        n = self.rotations
        older = self.path.with_name(f"{self.path.name}.{n - 1}")
        if older.exists():  # delaycompress: the previous rotation is compressed now
            with older.open("rb") as src, gzip.open(f"{older}.gz", "wb") as dst:
                shutil.copyfileobj(src, dst)
            older.unlink()
        if self.mode == "rename":
            f.close()
            os.rename(self.path, self.path.with_name(f"{self.path.name}.{n}"))
            return self.path.open("a")
        f.flush()
        shutil.copyfile(self.path, self.path.with_name(f"{self.path.name}.{n}"))
        os.truncate(self.path, 0)
        return f

    def run(self) -> None:
        f = self.path.open("a")
        size = 0
        start = time.time()
        while self.written < self.lines:
            chunk = []
            for _ in range(200):
                line = orjson.dumps({"timestamp": "2025-01-01T00:00:00.000Z", "message": "storm",
                                     "n": self.written}).decode() + "\n"
                chunk.append(line)
                self.written += 1
            data = "".join(chunk)
            f.write(data)
            f.flush()
            size += len(data)
            if size >= ROTATE_BYTES:
                f = self._rotate(f)
                size = 0
        f.close()
        self.seconds = time.time() - start


@pytest.mark.parametrize("mode", ["rename", "copytruncate"])
def test_rotation_storm(tmp_path: Path, mode: str) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    out = tmp_path / "out"
    config = tmp_path / "shipper.yaml"
    port = free_port()
    config.write_text(f"""
data_dir: {tmp_path}/data
api: {{address: "127.0.0.1:{port}"}}
sources:
  app: {{type: file, include: ["{logs}/app.log*"], exclude: ["*.gz"], format: json,
         glob_interval_secs: 0.02, poll_interval_secs: 0.02, rotate_wait_secs: 2}}
sinks:
  out: {{type: file, inputs: [app], path: "{out}/out.ndjson", batch: {{max_events: 2000, timeout_secs: 0.05}}}}
""")
    shipper = Shipper(config, tmp_path / "shipper.log")
    shipper.start()
    shipper.wait_ready(port)
    writer = Writer(logs / "app.log", int(scaled(400_000, 5_000_000)), mode)
    writer.start()
    while writer.is_alive():
        shipper.sample()
        time.sleep(0.5)
    rate = writer.written / writer.seconds
    wait_for(lambda: len(count_numbers(ndjson_lines(out))) >= writer.written, scaled(120, 600), 0.5)
    shipper.stop()
    seen = count_numbers(ndjson_lines(out))
    summary = Summary(f"rotation_storm_{mode}", writer.written, {"file": seen}, shipper.peak_rss, 0, [
        f"rotations         {writer.rotations} (every 1 MiB, {rate:.0f} lines/s, "
        f"{writer.rotations / writer.seconds:.1f} rotations/s)"])
    summary.write()
    assert writer.rotations >= 5
    lost = summary.lost("file")
    assert not lost, f"{len(lost)} lost, first {lost[:10]}\n{(tmp_path / 'shipper.log').read_text()[-3000:]}"
    if mode == "rename":
        assert summary.duplicates("file") == 0
