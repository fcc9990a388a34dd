"""The ``ecvi-logs ship`` process: SIGHUP reloads a valid config and keeps the old one otherwise;
SIGTERM stops within the shutdown timeout with checkpoints saved."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(tmp: Path, port: int, out: str) -> str:
    return f"""
data_dir: {tmp}/data
api: {{address: "127.0.0.1:{port}"}}
shutdown_timeout_secs: 5
sources:
  app: {{type: file, include: ["{tmp}/logs/*.log"], format: json, glob_interval_secs: 0.1}}
sinks:
  out: {{type: file, inputs: [app], path: "{tmp}/{out}", batch: {{timeout_secs: 0.05}}}}
"""


def _wait(cond, timeout: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.1)
    return False


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def _lines(p: Path) -> int:
    return len(p.read_text().splitlines()) if p.exists() else 0


def test_sighup_reload_and_sigterm(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    log = tmp_path / "logs" / "a.log"
    log.write_text("".join(json.dumps({"message": "m", "n": i}) + "\n" for i in range(100)))
    port = _free_port()
    cfg = tmp_path / "shipper.yaml"
    cfg.write_text(_config(tmp_path, port, "one.ndjson"))
    err = (tmp_path / "stderr.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "shipper.cli", "ship", "--config", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL)
    try:
        assert _wait(lambda: _ready(port)), (tmp_path / "stderr.log").read_text()
        assert _wait(lambda: _lines(tmp_path / "one.ndjson") == 100)

        cfg.write_text("sources: {broken")  # invalid: must be refused, old config keeps running
        proc.send_signal(signal.SIGHUP)
        assert _wait(lambda: "reload refused" in (tmp_path / "stderr.log").read_text())
        with log.open("a") as f:
            f.write(json.dumps({"message": "m", "n": 100}) + "\n")
        assert _wait(lambda: _lines(tmp_path / "one.ndjson") == 101)

        cfg.write_text(_config(tmp_path, port, "two.ndjson"))  # valid: new sink path from now on
        proc.send_signal(signal.SIGHUP)
        assert _wait(lambda: "reloading config" in (tmp_path / "stderr.log").read_text())
        assert _wait(lambda: _ready(port))
        with log.open("a") as f:
            f.write(json.dumps({"message": "m", "n": 101}) + "\n")
        assert _wait(lambda: _lines(tmp_path / "two.ndjson") == 1)
        assert _lines(tmp_path / "one.ndjson") == 101  # nothing re-read after the reload

        started = time.time()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert time.time() - started < 10
    finally:
        if proc.poll() is None:
            proc.kill()
    saved = json.loads((tmp_path / "data" / "checkpoints" / "app.json").read_text())["files"]
    assert [e["offset"] for e in saved.values()] == [log.stat().st_size]


def _metric(port: int, name: str, labels: str) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as r:
            text = r.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(f"{name}{{{labels}}} "):
            return float(line.rsplit(" ", 1)[1])
    return None


def _start(tmp_path: Path, cfg_text: str) -> tuple[subprocess.Popen[bytes], Path, Path]:
    (tmp_path / "logs").mkdir()
    log = tmp_path / "logs" / "a.log"
    log.write_text(json.dumps({"message": "m", "n": 0}) + "\n")
    cfg = tmp_path / "shipper.yaml"
    cfg.write_text(cfg_text)
    err = (tmp_path / "stderr.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "shipper.cli", "ship", "--config", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL)
    return proc, cfg, log


def _stderr(tmp: Path) -> str:
    return (tmp / "stderr.log").read_text()


@pytest.mark.parametrize("bad", ["data_dir_is_a_file", "forward_address_in_use", "not_utf8"])
def test_sighup_with_a_config_that_cannot_start_keeps_the_pipeline_running(tmp_path: Path, bad: str) -> None:
    port = _free_port()
    proc, cfg, log = _start(tmp_path, _config(tmp_path, port, "one.ndjson"))
    taken = socket.socket()
    try:
        assert _wait(lambda: _ready(port)), _stderr(tmp_path)
        assert _wait(lambda: _lines(tmp_path / "one.ndjson") == 1)
        good = _config(tmp_path, port, "two.ndjson")
        outcome = "start_failed"
        if bad == "data_dir_is_a_file":
            (tmp_path / "afile").write_text("x")
            cfg.write_text(good.replace(f"data_dir: {tmp_path}/data", f"data_dir: {tmp_path}/afile"))
        elif bad == "forward_address_in_use":
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            addr = f"127.0.0.1:{taken.getsockname()[1]}"
            cfg.write_text(good.replace("sources:\n", f"sources:\n  fwd: {{type: forward, address: \"{addr}\"}}\n")
                           .replace("inputs: [app]", "inputs: [app, fwd]"))
        else:
            cfg.write_bytes(good.encode() + b"# \xff\xfe not utf-8\n")
            outcome = "invalid"
        proc.send_signal(signal.SIGHUP)
        assert _wait(lambda: _metric(port, "ecvi_shipper_config_reloads_total", f'outcome="{outcome}"') == 1.0), \
            _stderr(tmp_path)
        assert proc.poll() is None, _stderr(tmp_path)
        assert "reload refused" in _stderr(tmp_path) or "reload failed" in _stderr(tmp_path)
        with log.open("a") as f:
            f.write(json.dumps({"message": "m", "n": 1}) + "\n")
        assert _wait(lambda: _lines(tmp_path / "one.ndjson") == 2), _stderr(tmp_path)
        assert _ready(port)
    finally:
        taken.close()
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def test_sighup_with_a_new_api_address_moves_the_api(tmp_path: Path) -> None:
    port, new_port = _free_port(), _free_port()
    proc, cfg, log = _start(tmp_path, _config(tmp_path, port, "one.ndjson"))
    try:
        assert _wait(lambda: _ready(port)), _stderr(tmp_path)
        cfg.write_text(_config(tmp_path, new_port, "one.ndjson"))
        proc.send_signal(signal.SIGHUP)
        assert _wait(lambda: _ready(new_port)), _stderr(tmp_path)
        assert not _ready(port)
        # The API moves during the reload; the outcome is counted when the reload returns.
        assert _wait(lambda: _metric(new_port, "ecvi_shipper_config_reloads_total", 'outcome="applied"') == 1.0)
        with log.open("a") as f:
            f.write(json.dumps({"message": "m", "n": 1}) + "\n")
        assert _wait(lambda: _lines(tmp_path / "one.ndjson") == 2), _stderr(tmp_path)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
