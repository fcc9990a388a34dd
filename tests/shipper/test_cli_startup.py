"""Start-up and operator errors are one line and exit 2, never a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result

from shipper.cli import main
from shipper.errors import ConfigError, StartupError


def _config(tmp: Path, data_dir: str | None = None, extra: str = "") -> Path:
    cfg = tmp / "shipper.yaml"
    cfg.write_text(f"""
data_dir: {data_dir or tmp / "data"}
sources:
  app: {{type: file, include: ["{tmp}/logs/*.log"], format: json}}
sinks:
  all: {{type: file, inputs: [app], path: "{tmp}/out/all.ndjson"}}
{extra}""")
    return cfg


def _one_line_exit_2(res: Result) -> str:
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    return res.output


def test_non_utf8_config_is_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "latin1.yaml"
    cfg.write_bytes(_config(tmp_path).read_bytes() + "# caf\xe9\n".encode("latin-1"))
    out = _one_line_exit_2(CliRunner().invoke(main, ["validate", "--config", str(cfg)]))
    assert str(cfg) in out and "UTF-8" in out


@pytest.mark.parametrize("error", [StartupError("data_dir /x: not writable (Permission denied)"),
                                   ConfigError([("api.address", "port in use")], "shipper.yaml")])
def test_ship_reports_startup_errors_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 error: Exception) -> None:
    async def refuse(*_args: Any, **_kw: Any) -> None:
        raise error

    monkeypatch.setattr("shipper.runner.run_shipper", refuse)
    monkeypatch.setattr("shipper.cli.setup_logging", lambda _level: None)
    out = _one_line_exit_2(CliRunner().invoke(main, ["ship", "--config", str(_config(tmp_path))]))
    assert ("not writable" in out) or ("port in use" in out)


def test_retention_apply_with_a_missing_loki_config(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    res = CliRunner().invoke(main, ["retention", "apply", "--backend", "loki", "--loki-config", str(missing)])
    out = _one_line_exit_2(res)
    assert str(missing) in out and len(out.strip().splitlines()) == 1


def test_dead_letter_list_with_a_line_that_is_not_an_entry(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    dl = tmp_path / "data" / "dead_letter"
    dl.mkdir(parents=True)
    good = orjson.dumps({"time": 1.0, "sink": "all", "reason": "bad mapping", "event": {
        "record": {"m": 1}, "raw": "m", "ts_ns": 1, "meta": {}}})
    (dl / "all.ndjson").write_bytes(good + b"\n[1,2]\n" + good + b"\n")
    out = _one_line_exit_2(CliRunner().invoke(main, ["dead-letter", "list", "--config", str(cfg)]))
    assert "all: 2 event(s)" in out and "bad mapping" in out
    assert "line 2: not a JSON object" in out


def test_dead_letter_replay_of_an_entry_without_record(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    dl = tmp_path / "data" / "dead_letter"
    dl.mkdir(parents=True)
    bad = orjson.dumps({"time": 1.0, "sink": "all", "reason": "x", "event": {"raw": "m", "ts_ns": 1}}) + b"\n"
    (dl / "all.ndjson").write_bytes(bad)
    out = _one_line_exit_2(CliRunner().invoke(main, ["dead-letter", "replay", "--config", str(cfg), "--sink", "all"]))
    assert "line 1: no record" in out
    assert (dl / "all.ndjson").read_bytes() == bad


def test_validate_rejects_a_data_dir_under_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("x")
    cfg = _config(tmp_path, data_dir=str(tmp_path / "plain" / "data"))
    out = _one_line_exit_2(CliRunner().invoke(main, ["validate", "--config", str(cfg)]))
    assert "data_dir" in out and "not a directory" in out


@pytest.mark.parametrize("data_dir", ["/proc/ecvi", "/sys/fs/ecvi"])
def test_validate_rejects_a_data_dir_on_a_kernel_file_system(tmp_path: Path, data_dir: str) -> None:
    out = _one_line_exit_2(CliRunner().invoke(main, ["validate", "--config", str(_config(tmp_path, data_dir))]))
    assert "data_dir" in out and "kernel file system" in out


def test_validate_rejects_clashing_listen_addresses(tmp_path: Path) -> None:
    extra = "api: {address: '127.0.0.1:24224'}\n"
    cfg = _config(tmp_path, extra=extra)
    text = cfg.read_text().replace("sinks:", "  fwd: {type: forward, address: '0.0.0.0:24224'}\nsinks:")
    cfg.write_text(text.replace("inputs: [app]", "inputs: [app, fwd]"))
    out = _one_line_exit_2(CliRunner().invoke(main, ["validate", "--config", str(cfg)]))
    assert "sources.fwd.address" in out and "same address as api.address" in out


def test_an_unknown_log_level_is_a_usage_error_not_a_traceback(tmp_path: Path) -> None:
    config = tmp_path / "shipper.yaml"
    config.write_text(f"data_dir: {tmp_path}/data\nsources: {{}}\nsinks: {{}}\n")
    result = CliRunner().invoke(main, ["ship", "--config", str(config), "--log-level", "verbose"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output and "'verbose' is not one of" in result.output
