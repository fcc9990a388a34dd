"""``ecvi-logs retention check``: separate exit codes, and JSON whenever --json is given."""

from __future__ import annotations

import socket
from pathlib import Path

import orjson
import pytest
import yaml
from click.testing import CliRunner

from shipper.cli import main
from shipper.jobs import http as jobs_http


@pytest.fixture
def closed_url() -> str:
    """A local port nobody listens on: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs_http.time, "sleep", lambda _s: None)


def _loki_config(tmp_path: Path, period: str) -> str:
    path = tmp_path / "loki.yaml"
    path.write_text(yaml.safe_dump({"compactor": {"working_directory": "/c", "retention_enabled": True,
                                                  "delete_request_store": "filesystem"},
                                    "limits_config": {"retention_period": period}}))
    return str(path)


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["retention", "check", *args])
    return result.exit_code, result.stdout, result.stderr


def test_unreachable_backend_exits_3_with_json(closed_url: str) -> None:
    code, out, err = _run("--backend", "loki", "--loki-url", closed_url, "--json")
    assert code == 3, out + err
    doc = orjson.loads(out)
    assert doc["ok"] is False and doc["command"] == "retention check"
    assert [u["backend"] for u in doc["unreachable"]] == ["loki"]
    assert closed_url in doc["unreachable"][0]["error"]


def test_unreachable_backend_exits_3_in_text(closed_url: str) -> None:
    code, out, err = _run("--backend", "elasticsearch", "--es-url", closed_url)
    assert code == 3 and "UNREACHABLE elasticsearch" in out and "Traceback" not in out + err


def test_unreachable_outranks_drift_and_the_other_findings_stay(tmp_path: Path, closed_url: str) -> None:
    code, out, _ = _run("--backend", "loki", "--backend", "elasticsearch", "--es-url", closed_url,
                        "--loki-config", _loki_config(tmp_path, "0s"), "--json")
    doc = orjson.loads(out)
    assert code == 3 and any(not f["ok"] for f in doc["findings"]) and len(doc["unreachable"]) == 1


def test_drift_exits_1_and_no_drift_0(tmp_path: Path) -> None:
    code, out, _ = _run("--backend", "loki", "--loki-config", _loki_config(tmp_path, "0s"), "--json")
    assert code == 1 and orjson.loads(out)["unreachable"] == []
    code, out, _ = _run("--backend", "loki", "--loki-config", _loki_config(tmp_path, "720h"), "--json")
    assert code == 0 and orjson.loads(out)["ok"], out


def test_usage_error_exits_2_with_json() -> None:
    code, out, _ = _run("--json")
    assert code == 2 and orjson.loads(out)["error"].startswith("no backend")


def test_exit_codes_are_documented() -> None:
    result = CliRunner().invoke(main, ["retention", "check", "--help"])
    assert all(f"{code} " in result.output for code in ("0", "1", "2", "3")) and "unreachable" in result.output
