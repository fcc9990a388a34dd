"""`ecvi-logs render vector`: the rendered Vector config, its VRL compiled and run with pyVRL."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from logging_config._redact import Redactor
from pipelines import vrl
from pipelines.cli import render
from pipelines.vector import MIN_DISK_BUFFER_BYTES, SAMPLE_RECORD
from shipper.config import load_config
from shipper.sinks.loki.config import LokiSinkConfig
from shipper.sinks.loki.encoder import metadata_name
from tests.deploy.conftest import CONFIG_ENV, DEPLOY, SHIPPER_CONFIGS
from tests.tools.locate import pyvrl_dir

REPO = Path(__file__).resolve().parents[2]
CONTRACT = REPO / "tests" / "shipper" / "fixtures" / "contract.yaml"
CONFIGS = [CONTRACT, *SHIPPER_CONFIGS]


def _render(path: Path, *args: str) -> tuple[str, dict[str, Any]]:
    result = CliRunner().invoke(render, ["vector", "--config", str(path), *args], env=CONFIG_ENV)
    assert result.exit_code == 0, result.output
    return result.output, yaml.safe_load(result.output)


@pytest.fixture(scope="module")
def pyvrl() -> Any:
    sys.path.insert(0, str(pyvrl_dir()))
    import pyvrl as module

    return module


def _unescape(source: str) -> str:
    """What Vector's environment interpolation leaves of a string: '$$' becomes '$'."""
    return source.replace("$$", "$")


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.parent.name + "/" + p.name)
def test_render_has_every_component(path: Path) -> None:
    text, out = _render(path)
    cfg = load_config(path, env=CONFIG_ENV)
    assert text.startswith("# Vector configuration rendered by `ecvi-logs render vector`")
    assert out["acknowledgements"] == {"enabled": True}
    assert out["data_dir"] == cfg.data_dir
    for name, src in cfg.sources.items():
        kube_api = src.type == "file" and src.kubernetes_api is not None
        assert out["sources"][name]["type"] == ("kubernetes_logs" if kube_api else
                                                {"file": "file", "forward": "fluent"}[src.type])
        parse = out["transforms"][f"{name}_parse"]
        assert parse["type"] == "remap" and parse["inputs"] == [name]
        assert "%ecvi_raw = payload" in parse["source"]
        if src.type == "file":
            assert "parse_json(payload)" in parse["source"]
    for name, t in cfg.transforms.items():
        assert out["transforms"][name]["type"] == ("filter" if t.type == "filter" else "remap")
        if t.type == "redact":
            assert "redact(" in out["transforms"][name]["source"]
    kinds = {"loki": "loki", "elasticsearch": "elasticsearch", "cloudwatch": "aws_cloudwatch_logs", "file": "file"}
    for name, sink in cfg.sinks.items():
        v = out["sinks"][name]
        assert v["type"] == kinds[sink.type]
        assert v["inputs"] == [f"{name}_prepare"]
        assert v["buffer"] == {"type": "disk", "max_size": max(sink.buffer.max_bytes, MIN_DISK_BUFFER_BYTES),
                               "when_full": sink.buffer.when_full}
        assert v["acknowledgements"] == {"enabled": True}
        if sink.type != "file":
            assert v["batch"]["max_events"] == sink.batch.max_events
            assert v["batch"]["max_bytes"] == sink.batch.max_bytes
            assert v["request"]["concurrency"] == sink.request.concurrency
        if isinstance(sink, LokiSinkConfig):
            prepare = out["transforms"][f"{name}_prepare"]["source"]
            for label, template in sink.labels.items():
                if "default(" in template:  # alternatives are computed by the prepare remap
                    field = re.fullmatch(r"\{\{ (ecvi_template_\d+) \}\}", v["labels"][label])
                    assert field and f".{field[1]} =" in prepare, (label, v["labels"][label])
                else:
                    assert v["labels"][label] == template
            assert set(v["structured_metadata"]) == {metadata_name(p) for p in sink.structured_metadata}
            computed = sorted(re.findall(r"ecvi_template_\d+", " ".join(v["labels"].values())))
            assert v["encoding"] == ({"codec": "text", "except_fields": computed} if computed else {"codec": "text"})
            assert v["dangerously_allow_unconfined_template_resolution"] is True
        if sink.type == "elasticsearch":
            assert v["id_key"] == "ecvi_id" and v["bulk"]["action"] == "create"
            assert v["request_retry_partial"] is True
            assert ".ecvi_id = %ecvi_id" in out["transforms"][f"{name}_prepare"]["source"]
        if sink.type == "cloudwatch":
            assert v["group_name"] == sink.group and v["stream_name"] == sink.stream
            assert v["retention"] == {"enabled": True, "days": sink.retention_days}
    assert out["tests"], "no tests: section"


def test_environment_references_stay_references() -> None:
    text, out = _render(DEPLOY / "kubernetes" / "overlays" / "elasticsearch" / "shipper.yaml")
    sink = out["sinks"]["elasticsearch"]
    assert sink["endpoints"] == ["${ES_URL:-https://elasticsearch-es-http.elastic-system.svc:9200}"]
    assert sink["request"]["headers"] == {"Authorization": "ApiKey ${ES_API_KEY}"}
    assert "id:secret" not in text
    assert "--dangerously-allow-env-var-interpolation" in text
    assert out["sources"]["containers"]["self_node_name"] == "${NODE_NAME}"
    # Every other '$' is doubled so that Vector's interpolation leaves it alone (a redaction regex's '$').
    assert "([-_.]|$$)" in out["transforms"]["redact"]["source"]


def test_without_references_dollars_stay_single() -> None:
    _, out = _render(CONTRACT)
    assert "(?P<log>.*)$')" in out["transforms"]["app_parse"]["source"]


def test_output_file_and_options(tmp_path: Path) -> None:
    target = tmp_path / "vector.yaml"
    result = CliRunner().invoke(render, ["vector", "-c", str(CONTRACT), "-o", str(target), "--vector-version",
                                         "0.56", "--no-tests"])
    assert result.exit_code == 0, result.output
    out = yaml.safe_load(target.read_text())
    assert "tests" not in out
    assert not any("dangerously_allow_unconfined_template_resolution" in s for s in out["sinks"].values())


def test_kubernetes_logs_source(tmp_path: Path) -> None:
    base = DEPLOY / "kubernetes" / "base" / "shipper.yaml"
    _, out = _render(base, "--kubernetes-logs")
    src = out["sources"]["containers"]
    assert src["type"] == "kubernetes_logs"
    assert src["include_paths_glob_patterns"] == ["/var/log/pods/**/*.log"]
    assert src["exclude_paths_glob_patterns"] == ["/var/log/pods/ecvi-logs_*_*/*/*.log"]
    assert src["self_node_name"] == "${NODE_NAME}"  # the source's kubernetes_api.node_name
    # Without kubernetes_api, --kubernetes-logs names the node with Vector's own variable.
    raw = yaml.safe_load(base.read_text())
    raw["sources"]["containers"].pop("kubernetes_api")
    plain = tmp_path / "shipper.yaml"
    plain.write_text(yaml.safe_dump(raw))
    _, out = _render(plain, "--kubernetes-logs")
    assert out["sources"]["containers"]["self_node_name"] == "${VECTOR_SELF_NODE_NAME}"
    _, out = _render(plain)
    assert out["sources"]["containers"]["type"] == "file"


def test_invalid_config_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources: {a: {type: file}}\nsinks: {}\n")
    result = CliRunner().invoke(render, ["vector", "--config", str(bad)])
    assert result.exit_code == 2
    assert "sources.a.include" in result.output


def test_s3_sink_is_left_out_with_a_note(tmp_path: Path) -> None:
    config = tmp_path / "s3.yaml"
    config.write_text(
        "sources: {app: {type: file, include: [/var/log/containers/*.log]}}\n"
        "sinks:\n"
        "  archive: {type: s3, inputs: [app], url: 'file:///tmp/ecvi-archive'}\n"
        "  out: {type: file, inputs: [app], path: ./out.ndjson}\n"
    )
    text, out = _render(config)
    assert "archive" not in out["sinks"]
    assert "archive_prepare" not in out["transforms"]
    assert all("type" in s for s in out["sinks"].values())
    assert "#   - sinks.archive: the s3 sink is not rendered: " in text
    assert out["sinks"]["out"]["type"] == "file"


def test_every_sink_type_is_rendered_or_named_as_not_rendered() -> None:
    from pipelines.vector import NOT_RENDERED, SINK_RENDERERS
    from shipper.sinks.registry import SINK_CONFIGS

    for config_class in SINK_CONFIGS:
        assert (config_class in SINK_RENDERERS) != (config_class in NOT_RENDERED), config_class
    assert set(SINK_RENDERERS) | set(NOT_RENDERED) == set(SINK_CONFIGS)


def test_bad_vector_version() -> None:
    result = CliRunner().invoke(render, ["vector", "-c", str(CONTRACT), "--vector-version", "latest"])
    assert result.exit_code == 2


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.parent.name + "/" + p.name)
def test_vrl_compiles_and_the_tests_section_passes(path: Path, pyvrl: Any) -> None:
    """What `vector test` does, with Vector's VRL: each test's input through its transform, then its
    conditions on the output; and every other VRL program compiled."""
    _, out = _render(path)
    for name, t in out["transforms"].items():
        if t["type"] == "remap":
            pyvrl.Transform(_unescape(t["source"]) + "\n.")  # compiles, or raises with the VRL error
        elif t["type"] == "filter":
            pyvrl.Transform("ok = " + _unescape(t["condition"]["source"]) + "\n.")
        elif t["type"] == "route":  # multiline grouping: text around, JSON objects past the reduce
            for cond in t["route"].values():
                pyvrl.Transform("ok = {\n" + _unescape(cond["source"]) + "}\n.")
        elif t["type"] == "reduce":
            pyvrl.Transform("ok = {\n" + _unescape(t["starts_when"]["source"]) + "}\n.")
        else:
            raise AssertionError(f"unexpected transform {name}: {t['type']}")
    for test in out["tests"]:
        [inp] = test["inputs"]
        assert inp["type"] == "vrl"
        event = pyvrl.Transform(_unescape(inp["source"]) + "\n.").remap({})
        program = _unescape(out["transforms"][inp["insert_at"]]["source"])
        for output in test["outputs"]:
            assert output["extract_from"] == inp["insert_at"]
            for cond in output["conditions"]:
                # The condition runs on the transform's output: as one program, the event keeps its types.
                pyvrl.Transform(program + "\n" + _unescape(cond["source"]) + "\n.").remap(event)


def test_parse_matches_the_shipper(pyvrl: Any) -> None:
    """The VRL parse of a CRI line yields the shipper's record and path metadata."""
    from shipper.event import record_from_payload
    from shipper.sources.file.kubernetes import metadata_from_path

    line = json.dumps(SAMPLE_RECORD)
    path = "/var/log/containers/api-7d9f8_ecvi_api-" + "ab" * 32 + ".log"
    program = vrl.parse_program("app", "file", "cri", kubernetes_metadata=True)
    out = pyvrl.Transform(program + "\n.").remap(
        {"message": f"2025-01-01T00:00:01.5Z stdout F {line}", "file": path, "offset": 7})
    expected = record_from_payload(line)
    for key, value in expected.items():
        if key != "timestamp":
            assert out[key] == value, key
    assert out["timestamp"].isoformat() == "2025-01-01T00:00:00.123000+00:00"
    assert out["kubernetes"] == metadata_from_path(path)


def test_redaction_matches_logging_config(pyvrl: Any) -> None:
    record = {**SAMPLE_RECORD, "nested": {"X-Api-Key": "k1", "list": [1, 2], "accessToken": "t"},
              "url": "https://bob:pw123@db.example.com/x",
              "keys": {"basicAuth": "a1", "X-Auth": "a2", "DB_PWD": "a3", "access_key": "a4", "session_id": "a5",
                       "author": "Bob", "authority": "ca", "tokenizer": "bpe"},
              "texts": {"broker": "redis://:brokerpw@cache:6379/0", "header": "Authorization: Token tok12345678",
                        "es": "ApiKey a2V5MTIzNDU2Nzg5", "signed": "https://s3/x?X-Amz-Signature=sig12345&a=1",
                        "google": "https://maps/api?key=gkey12345"}}
    out = pyvrl.Transform(vrl.redact_program([]) + "\n.").remap(record)
    expected = Redactor().redact(record)
    for key in ("password", "nested", "headers", "keys"):
        assert out[key] == expected[key], key
    assert "pw123" not in out["url"] and out["message"] == record["message"]
    for secret in ("brokerpw", "tok12345678", "a2V5MTIzNDU2Nzg5", "sig12345", "gkey12345"):
        assert secret not in str(out["texts"]), secret


def test_filter_matches_the_shipper(pyvrl: Any) -> None:
    from shipper.event import Event
    from shipper.transforms import build_transform
    from shipper.transforms.config import FilterConfig

    cfg = FilterConfig(type="filter", inputs=["x"], min_level="WARNING", match={"service": "api"})
    keep = build_transform(cfg)
    program = pyvrl.Transform(f".ok = {vrl.filter_condition(cfg.min_level, cfg.match)}\n.")
    for record in ({"level": "ERROR", "service": "api"}, {"level": "info", "service": "api"},
                   {"level": "WARNING", "service": "web"}, {"service": "api"}, {"level": "FATAL", "service": "api"},
                   {"level": "TRACE", "service": "api"}):
        shipper_keeps = bool(keep([Event(dict(record), json.dumps(record), 0)]))
        assert program.remap(dict(record))["ok"] is shipper_keeps, record


def test_templates_render_like_the_shipper(pyvrl: Any) -> None:
    out = pyvrl.Transform(vrl.add_fields_program({"where": "{{ kubernetes.namespace }}/{{ missing }}-x"}, True)
                          + "\n.").remap({"kubernetes": {"namespace": "ecvi"}})
    assert out["where"] == "ecvi/-x"
    assert vrl.string("a{{b") == '"a{" + "{b"'


def test_vector_validate_and_test(tmp_path: Path) -> None:
    vector = shutil.which("vector")
    if vector is None:
        pytest.skip("no `vector` binary on PATH (it is not packaged for this machine); its VRL is compiled and "
                    "the tests: section run with pyVRL above")
    for path in CONFIGS:
        text, _ = _render(path)
        target = tmp_path / f"{path.parent.name}-{path.stem}.yaml"
        target.write_text(text)
        env = {"ES_API_KEY": "x", "ES_URL": "http://127.0.0.1:9200", "VECTOR_SELF_NODE_NAME": "n1"}
        for args in (["validate", "--no-environment"], ["test"]):
            proc = subprocess.run([vector, *args, "--dangerously-allow-env-var-interpolation", str(target)],
                                  capture_output=True, text=True, timeout=120, check=False, env=env)
            assert proc.returncode == 0, proc.stdout + proc.stderr
