"""``ecvi-logs validate``: --no-env for configs that name secrets, every kind of problem in one pass."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from shipper.cli import main
from shipper.config import ConfigError, parse_config

REPO = Path(__file__).resolve().parents[2]
DEPLOY_CONFIGS = sorted(p for p in (REPO / "deploy").rglob("*.yaml") if p.read_text().lstrip().startswith(
    ("data_dir", "sources", "api", "#")) and "\nsinks:" in p.read_text())


def _validate(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["validate", *args], env=env)
    return result.exit_code, result.output


def test_the_deploy_configs_are_found() -> None:
    assert len(DEPLOY_CONFIGS) >= 4
    assert any("${ES_API_KEY}" in p.read_text() for p in DEPLOY_CONFIGS)


@pytest.mark.parametrize("path", DEPLOY_CONFIGS, ids=lambda p: str(p.relative_to(REPO / "deploy")))
def test_every_deploy_config_validates_without_the_environment(path: Path) -> None:
    code, out = _validate("--config", str(path), "--no-env", env={"ES_API_KEY": None})  # type: ignore[dict-item]
    assert code == 0, out
    assert "valid" in out


def test_without_no_env_an_unset_secret_is_still_an_error(tmp_path: Path) -> None:
    cfg = _es_config(tmp_path, "${ES_API_KEY}")
    code, out = _validate("--config", str(cfg), env={"ES_API_KEY": None})  # type: ignore[dict-item]
    assert code == 2 and "sinks.es.api_key" in out and "${ES_API_KEY}" in out


def test_no_env_names_the_placeholders_and_ignores_the_environment(tmp_path: Path) -> None:
    cfg = _es_config(tmp_path, "${ES_API_KEY}", endpoint="${ES_URL:-http://127.0.0.1:9200}", port="${API_PORT}")
    env = {"ES_API_KEY": "not a secret I want to see", "ES_URL": "not a URL"}
    code, out = _validate("--config", str(cfg), "--no-env", env=env)
    assert code == 0, out  # ES_URL's default is used, not the environment's bad value
    assert "${ES_API_KEY}" in out and "${API_PORT}" in out and "${ES_URL}" not in out
    assert "not a secret" not in out


def test_no_env_still_reports_structural_problems(tmp_path: Path) -> None:
    cfg = _es_config(tmp_path, "${ES_API_KEY}", extra="    bogus_key: 1\n")
    code, out = _validate("--config", str(cfg), "--no-env")
    assert code == 2 and "sinks.es.bogus_key" in out


def _es_config(tmp: Path, api_key: str, *, endpoint: str = "http://127.0.0.1:9200", port: str = "9100",
               extra: str = "") -> Path:
    cfg = tmp / "shipper.yaml"
    cfg.write_text(f"""
data_dir: {tmp}/data
api: {{address: "127.0.0.1:{port}"}}
sources:
  app: {{type: file, include: ["{tmp}/*.log"], format: json}}
sinks:
  es:
    type: elasticsearch
    inputs: [app]
    endpoint: "{endpoint}"
    api_key: "{api_key}"
{extra}""")
    return cfg


SCHEMA_AND_GRAPH = """
sources:
  app: {type: file, include: ["/tmp/*.log"], format: json, read_from: nowhere}
sinks:
  out: {type: file, inputs: [app, missing], path: /tmp/out.ndjson}
"""


def test_schema_and_graph_problems_come_in_one_pass() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(SCHEMA_AND_GRAPH, env={})
    text = str(info.value)
    assert "sources.app.read_from" in text
    assert "sinks.out.inputs[1]" in text and "'missing'" in text


def test_graph_problems_where_a_component_is_unreadable() -> None:
    text = """
sources:
  app: {type: file, include: ["/tmp/*.log"], format: json}
  broken: 42
sinks:
  out: {type: file, inputs: [app, broken, nowhere], path: /tmp/out.ndjson}
"""
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={})
    problems = dict(info.value.problems)
    assert "sources.broken" in problems
    assert "nowhere" in problems["sinks.out.inputs[2]"]
    assert "sinks.out.inputs[1]" not in problems  # it names a source, even a broken one


def test_validate_prints_both_kinds(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(SCHEMA_AND_GRAPH)
    code, out = _validate("--config", str(cfg))
    assert code == 2 and "read_from" in out and "missing" in out
