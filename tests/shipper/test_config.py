from pathlib import Path

import pytest
from click.testing import CliRunner

from shipper.cli import main
from shipper.config import ConfigError, load_config, parse_config

CONTRACT = Path(__file__).parent / "fixtures" / "contract.yaml"


def test_contract_block_validates_verbatim() -> None:
    cfg = load_config(CONTRACT)
    assert set(cfg.sources) == {"app", "fwd"}
    assert cfg.sinks["loki"].labels == {"service": "{{ service }}", "level": "{{ level }}"}
    assert cfg.sinks["es"].index == "ecvi-logs-%Y.%m.%d"
    assert cfg.sinks["cw"].stream == "{{ kubernetes.pod_name }}"
    assert cfg.api.address == "127.0.0.1:9100"


def _problems(text: str, env: dict[str, str] | None = None) -> dict[str, str]:
    with pytest.raises(ConfigError) as exc:
        parse_config(text, env=env or {})
    return dict(exc.value.problems)


def test_every_error_named_by_key_path() -> None:
    problems = _problems(
        """
sources:
  app: {type: file, include: "x", formt: cri}
sinks:
  out: {type: file, inputs: [app], path: 3, batch: {max_events: -1}}
  l: {type: loki, inputs: [app], endpoint: x, labels: {"bad-name": x}}
"""
    )
    assert "sources.app.include" in problems
    assert "Extra inputs" in problems["sources.app.formt"]
    assert "sinks.out.path" in problems
    assert "sinks.out.batch.max_events" in problems
    assert "bad-name" in problems["sinks.l.labels"]


def test_graph_errors() -> None:
    problems = _problems(
        """
sources:
  app: {type: file, include: ["x"]}
  lonely: {type: file, include: ["y"]}
sinks:
  out: {type: file, inputs: [app, ghost], path: p}
"""
    )
    assert "ghost" in problems["sinks.out.inputs[1]"]
    assert "not an input" in problems["sources.lonely"]


def test_env_interpolation() -> None:
    text = """
data_dir: ${DATA:-/tmp/d}
sources: {app: {type: file, include: ["${LOGS}/*.log"]}}
sinks: {out: {type: file, inputs: [app], path: "$$HOME/out"}}
"""
    cfg = parse_config(text, env={"LOGS": "/var/log/x"})
    assert cfg.data_dir == "/tmp/d"
    assert cfg.sources["app"].include == ["/var/log/x/*.log"]
    assert cfg.sinks["out"].path == "$HOME/out"
    problems = _problems(text)
    assert "${LOGS}" in problems["sources.app.include[0]"]


def test_validate_cli_exit_codes(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(main, ["validate", "--config", str(CONTRACT)])
    assert ok.exit_code == 0, ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources: {a: {type: nope}}\nsinks: {}\n")
    res = runner.invoke(main, ["validate", "--config", str(bad)])
    assert res.exit_code == 2
    assert "sources.a" in res.output
    missing = runner.invoke(main, ["validate", "--config", str(tmp_path / "missing.yaml")])
    assert missing.exit_code == 2 and "cannot read" in missing.output


def test_version_and_help() -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["--version"]).output.startswith("ecvi-logs, version")
    out = runner.invoke(main, ["--help"]).output
    for cmd in ("ship", "validate", "tap", "dead-letter"):
        assert cmd in out
