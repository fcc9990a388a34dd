"""The Loki config: the real Loki accepts it, and a Loki started with it keeps logs 30 days."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.deploy.conftest import DEPLOY
from tests.services._process import free_port
from tests.tools.locate import loki_binary

CONFIG = DEPLOY / "loki" / "loki-config.yaml"


def test_config_sets_30_day_retention() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    assert config["compactor"]["retention_enabled"] is True
    assert config["compactor"]["delete_request_store"] == "filesystem"
    assert config["limits_config"]["retention_period"] == "720h"
    assert config["limits_config"]["allow_structured_metadata"] is True
    assert config["schema_config"]["configs"][-1]["schema"] == "v13"


@pytest.mark.timeout(3600)
def test_loki_verify_config() -> None:
    proc = subprocess.run([str(loki_binary()), "-verify-config", f"-config.file={CONFIG}"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


_UNITS = {"y": 365 * 24.0, "w": 7 * 24.0, "d": 24.0, "h": 1.0, "m": 1 / 60, "s": 1 / 3600, "ms": 1 / 3_600_000}


def _hours(duration: str) -> float:
    """A Prometheus-style duration (``30d``, ``720h``, ``1d12h``) in hours."""
    parts = re.findall(r"(\d+)(ms|y|w|d|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(int(n) * _UNITS[u] for n, u in parts)


def test_duration_parsing() -> None:
    assert _hours("720h") == _hours("30d") == 720
    assert _hours("1d12h") == 36


def _local_copy(tmp: Path, http_port: int, grpc_port: int) -> dict[str, Any]:
    """The config with its paths under ``tmp`` and everything on 127.0.0.1 free ports."""
    text = CONFIG.read_text().replace("/loki", str(tmp / "loki"))
    config = yaml.safe_load(text)
    config["server"].update(http_listen_address="127.0.0.1", http_listen_port=http_port,
                            grpc_listen_address="127.0.0.1", grpc_listen_port=grpc_port)
    config["memberlist"] = {"bind_addr": ["127.0.0.1"], "bind_port": free_port(), "join_members": []}
    return config


@pytest.mark.timeout(3600)
def test_running_loki_reports_720h_retention(tmp_path: Path) -> None:
    binary = loki_binary()
    http_port, grpc_port = free_port(), free_port()
    config_file = tmp_path / "loki.yaml"
    config_file.write_text(yaml.safe_dump(_local_copy(tmp_path, http_port, grpc_port)))
    log = (tmp_path / "loki.log").open("w")
    proc = subprocess.Popen([str(binary), f"-config.file={config_file}"], stdout=log, stderr=subprocess.STDOUT,
                            cwd=tmp_path)
    try:
        deadline = time.monotonic() + 90
        body = ""
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"loki exited {proc.returncode}:\n{(tmp_path / 'loki.log').read_text()[-3000:]}")
            try:
                resp = httpx.get(f"http://127.0.0.1:{http_port}/config", timeout=2)
                if resp.status_code == 200:
                    body = resp.text
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        assert body, f"no /config within 90 s:\n{(tmp_path / 'loki.log').read_text()[-3000:]}"
        effective = yaml.safe_load(body)
        # Loki prints durations in its own units (720h comes back as "30d").
        assert _hours(effective["limits_config"]["retention_period"]) == 720
        assert effective["compactor"]["retention_enabled"] is True
        assert effective["compactor"]["delete_request_store"] == "filesystem"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
