"""``ecvi-logs tap`` and ``ecvi-logs dead-letter list|replay``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import orjson
from click.testing import CliRunner

from shipper.cli import main
from shipper.event import Event
from shipper.sinks._common.dead_letter import DeadLetterWriter


def _config(tmp: Path) -> Path:
    cfg = tmp / "shipper.yaml"
    cfg.write_text(f"""
data_dir: {tmp}/data
sources:
  app: {{type: file, include: ["{tmp}/logs/*.log"], format: json, glob_interval_secs: 0.05}}
transforms:
  errors: {{type: filter, inputs: [app], min_level: ERROR}}
sinks:
  all: {{type: file, inputs: [app], path: "{tmp}/out/all.ndjson"}}
  alerts: {{type: file, inputs: [errors], path: "{tmp}/out/alerts.ndjson"}}
""")
    return cfg


def test_tap_prints_what_each_sink_gets_and_moves_nothing(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "a.log").write_text(
        json.dumps({"level": "INFO", "message": "one"}) + "\n" + json.dumps({"level": "ERROR", "message": "two"}) + "\n"
    )
    cfg = _config(tmp_path)
    out = subprocess.run(
        [sys.executable, "-m", "shipper.cli", "tap", "--config", str(cfg), "--sink", "alerts", "--limit", "1"],
        capture_output=True, timeout=30, check=True,
    )
    lines = [orjson.loads(x) for x in out.stdout.splitlines()]
    assert len(lines) == 1
    assert lines[0]["sinks"] == ["alerts"] and lines[0]["record"]["message"] == "two"
    assert not (tmp_path / "data" / "checkpoints").exists()
    assert not (tmp_path / "out").exists()


def test_dead_letter_list_and_replay(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    DeadLetterWriter(tmp_path / "data", "all").write(
        [(Event({"message": f"m{i}"}, f"m{i}", i * 1_000_000_000, {}), "mapper_parsing_exception: bad")
         for i in range(3)]
    )
    runner = CliRunner()
    listed = runner.invoke(main, ["dead-letter", "list", "--config", str(cfg)])
    assert listed.exit_code == 0
    assert "all: 3 event(s)" in listed.output and "mapper_parsing_exception: bad" in listed.output
    assert "alerts: 0 event(s)" in listed.output
    replayed = runner.invoke(main, ["dead-letter", "replay", "--config", str(cfg), "--sink", "all"])
    assert replayed.exit_code == 0, replayed.output
    assert json.loads(replayed.output) == {"sink": "all", "resent": 3, "failed_again": 0, "unreadable": 0}
    assert (tmp_path / "out" / "all.ndjson").read_text().splitlines() == ["m0", "m1", "m2"]
    again = runner.invoke(main, ["dead-letter", "list", "--config", str(cfg), "--sink", "all"])
    assert "all: 0 event(s)" in again.output
