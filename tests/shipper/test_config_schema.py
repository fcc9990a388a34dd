"""docs/shipper-config.schema.json: generated from the config models, fresh, and true to every shipped config.

Editors check a config against this schema before ``validate`` ever runs, so it must accept every
config we ship (with its ``${VAR}`` references still in place) and refuse what the loader refuses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from shipper.config import ConfigError, docs, parse_config
from shipper.config.interpolate import VARIABLE
from shipper.config.model import COMPONENT_TAGS
from shipper.config.yaml_text import read_yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "docs" / "shipper-config.schema.json"


def _shipped_configs() -> list[Path]:
    """Every YAML file under deploy/ and pipelines/ (and the contract fixture) that is a shipper config."""
    candidates = [p for d in ("deploy", "pipelines") for p in (ROOT / d).rglob("*.y*ml")]
    candidates.append(ROOT / "tests" / "shipper" / "fixtures" / "contract.yaml")
    found = []
    for path in sorted(candidates):
        try:
            data, _ = read_yaml(path.read_text(encoding="utf-8"), keep=VARIABLE)
        except Exception:  # a Helm template or another tool's file: not ours to judge here
            continue
        if isinstance(data, dict) and "sources" in data and "sinks" in data:
            found.append(path)
    return found


CONFIGS = _shipped_configs()


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _errors(validator: jsonschema.protocols.Validator, data: Any) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in validator.iter_errors(data)]


def test_the_schema_is_up_to_date() -> None:
    assert docs.main(["--schema", "--check", str(SCHEMA)]) == 0, (
        "run: python -m shipper.config.docs --schema > docs/shipper-config.schema.json")


def test_check_fails_on_a_stale_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "schema.json"
    stale.write_text(SCHEMA.read_text(encoding="utf-8").replace('"minProperties": 1', '"minProperties": 2', 1),
                     encoding="utf-8")
    assert docs.main(["--schema", "--check", str(stale)]) == 1
    assert "--schema > " in capsys.readouterr().err


def test_the_shipped_configs_are_found() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in CONFIGS}
    assert {"deploy/compose/shipper.yaml", "deploy/kubernetes/base/shipper.yaml",
            "tests/shipper/fixtures/contract.yaml"} <= names
    assert len(CONFIGS) >= 5


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_shipped_config_matches_the_schema(path: Path, validator: jsonschema.protocols.Validator) -> None:
    data, problems = read_yaml(path.read_text(encoding="utf-8"), keep=VARIABLE)
    assert problems == []
    assert _errors(validator, data) == []


def _base() -> dict[str, Any]:
    return {"sources": {"app": {"type": "file", "include": ["/var/log/containers/*.log"]}},
            "sinks": {"out": {"type": "file", "inputs": ["app"], "path": "/tmp/out.ndjson"}}}


def _with(path: str, value: Any) -> dict[str, Any]:
    data = _base()
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return data


def _loader_accepts(data: dict[str, Any], env: dict[str, str]) -> bool:
    try:
        parse_config(json.dumps(data), env=env)
    except ConfigError:
        return False
    return True


@pytest.mark.parametrize(("path", "value", "env"), [
    ("api.address", "127.0.0.1:9100", {}),
    ("api.enabled", "${API_ON}", {"API_ON": "true"}),
    ("shutdown_timeout_secs", "${GRACE:-20}", {}),
    ("sources.app.format", "${FORMAT}", {"FORMAT": "json"}),
    ("sinks.out.path", "/var/out/${NODE_NAME}.ndjson", {"NODE_NAME": "n1"}),
])
def test_schema_and_loader_both_accept(path: str, value: Any, env: dict[str, str],
                                       validator: jsonschema.protocols.Validator) -> None:
    data = _with(path, value)
    assert _errors(validator, data) == []
    assert _loader_accepts(data, env)


@pytest.mark.parametrize(("path", "value", "where"), [
    ("api.colour", "blue", "api"),                        # unknown key
    ("shutdown_timeout_secs", "soon", "shutdown_timeout_secs"),   # not a number, not a ${VAR}
    ("shutdown_timeout_secs", 0, "shutdown_timeout_secs"),        # out of bounds
    ("sources.app.format", "xml", "sources.app"),          # not one of the formats
    ("sinks.out.inputs", "app", "sinks.out"),              # a list, not a string
    ("sources", {}, "sources"),                            # at least one source
])
def test_schema_and_loader_both_refuse(path: str, value: Any, where: str,
                                       validator: jsonschema.protocols.Validator) -> None:
    data = _with(path, value)
    errors = _errors(validator, data)
    assert errors, f"the schema accepts {path}={value!r}"
    assert any(e.startswith(where) for e in errors), errors
    assert not _loader_accepts(data, {})


def test_a_component_type_must_be_written_out(validator: jsonschema.protocols.Validator) -> None:
    """The one place the schema is stricter than the loader: the tag chooses which options exist."""
    data = _with("sinks.out.type", "${SINK_TYPE}")
    assert _errors(validator, data)
    assert _loader_accepts(data, {"SINK_TYPE": "file"})


def test_every_component_type_is_in_the_schema() -> None:
    text = SCHEMA.read_text(encoding="utf-8")
    assert {tag for tag in COMPONENT_TAGS if f'"const": "{tag}"' not in text} == set()


def test_the_variable_pattern_is_the_loaders() -> None:
    pattern = json.loads(SCHEMA.read_text(encoding="utf-8"))["$defs"]["Variable"]["pattern"]
    for text in ("${A}", "x-${A_1:-d}-y", "${B-d}"):
        assert VARIABLE.search(text) and jsonschema.Draft202012Validator({"pattern": pattern}).is_valid(text)
    for text in ("$A", "${1A}", "$$", "{A}"):
        assert not jsonschema.Draft202012Validator({"pattern": pattern}).is_valid(text), text
