"""Hostile config input: environment values, duplicate keys, odd numbers, bad bytes, clashing addresses."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipper.config import ConfigError, load_config, parse_config

BASE = """
sources:
  app: {type: file, include: ["/x/*.log"]}
sinks:
  out:
    type: file
    inputs: [app]
    path: ${OUT}
"""


def _problems(text: str, env: dict[str, str] | None = None) -> dict[str, str]:
    with pytest.raises(ConfigError) as exc:
        parse_config(text, env=env or {})
    return dict(exc.value.problems)


@pytest.mark.parametrize("value", ["hunter2 #tail", "null", "%S3cret", "true", "[a, b]", "x: y", "'q", "*ref"])
def test_env_value_is_taken_verbatim_as_a_string(value: str) -> None:
    cfg = parse_config(BASE, env={"OUT": value})
    assert cfg.sinks["out"].path == value  # type: ignore[union-attr]


def test_env_value_with_newline_cannot_inject_keys() -> None:
    evil = "/tmp/o\n  evil: {type: file, inputs: [app], path: /tmp/evil}"
    cfg = parse_config(BASE, env={"OUT": evil})
    assert set(cfg.sinks) == {"out"}
    assert cfg.sinks["out"].path == evil  # type: ignore[union-attr]


def test_variable_in_a_comment_need_not_be_set() -> None:
    cfg = parse_config("# uses ${NOT_SET} once\n" + BASE + "    # ${ALSO_NOT_SET}\n", env={"OUT": "/o"})
    assert cfg.sinks["out"].path == "/o"  # type: ignore[union-attr]


def test_whole_scalar_variable_still_converts_to_numbers_and_bools() -> None:
    text = BASE + "    batch: {max_events: ${N}, timeout_secs: ${T}}\n    healthcheck: ${HC}\n"
    cfg = parse_config(text, env={"OUT": "/o", "N": "5", "T": "0.5", "HC": "false"})
    sink = cfg.sinks["out"]
    assert (sink.batch.max_events, sink.batch.timeout_secs, sink.healthcheck) == (5, 0.5, False)


def test_errors_name_key_and_variable_never_the_value() -> None:
    text = """
sources: {app: {type: file, include: ["/x/*.log"]}}
sinks:
  l:
    type: loki
    inputs: [app]
    endpoint: ${LOKI_URL}
    batch: {max_events: "${N}"}
"""
    with pytest.raises(ConfigError) as exc:
        parse_config(text, env={"LOKI_URL": "ftp://user:s3cr3t-value@h", "N": "s3cr3t-count"})
    message = str(exc.value)
    assert "s3cr3t" not in message
    problems = dict(exc.value.problems)
    assert "${LOKI_URL}" in problems["sinks.l.endpoint"]
    assert "${N}" in problems["sinks.l.batch.max_events"]
    assert "${MISSING}" in _problems(BASE.replace("${OUT}", "${MISSING}"))["sinks.out.path"]
    short = _problems(text, env={"LOKI_URL": "http://h", "N": "a"})["sinks.l.batch.max_events"]
    assert short.startswith("Input should be a valid integer") and short.endswith("(value from ${N})")
    assert "'a'" not in _problems(text, env={"LOKI_URL": "a", "N": "1"})["sinks.l.endpoint"]


def test_dollar_escape_and_default() -> None:
    cfg = parse_config(BASE + "data_dir: ${D:-/tmp/d}\n", env={"OUT": "$$HOME/${OUT2:-x}"})
    # A value taken from the environment is not interpolated again.
    assert cfg.sinks["out"].path == "$$HOME/${OUT2:-x}"  # type: ignore[union-attr]
    cfg = parse_config(BASE.replace("${OUT}", "$$HOME/${OUT2:-x}") + "data_dir: ${D:-/tmp/d}\n", env={})
    assert cfg.sinks["out"].path == "$HOME/x"  # type: ignore[union-attr]
    assert cfg.data_dir == "/tmp/d"


def test_duplicate_keys_are_an_error_with_path_and_line() -> None:
    text = """sources:
  app: {type: file, include: ["/x/*.log"]}
sinks:
  out: {type: file, inputs: [app], path: /a}
  out: {type: file, inputs: [app], path: /b}
"""
    problems = _problems(text)
    assert "sinks.out" in problems
    assert "duplicate" in problems["sinks.out"] and "line 5" in problems["sinks.out"]
    nested = _problems(BASE.replace("path: ${OUT}", "path: /a\n    path: /b"))
    assert "line 9" in nested["sinks.out.path"]


def test_yaml_error_names_the_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("sources:\n  app: {type: file\nsinks: [\n")
    with pytest.raises(ConfigError) as exc:
        load_config(f)
    message = str(exc.value)
    assert str(f) in message and "<unicode string>" not in message
    assert "line " in message


def test_non_utf8_config_is_a_config_error(tmp_path: Path) -> None:
    f = tmp_path / "latin1.yaml"
    f.write_bytes(BASE.replace("${OUT}", "/caf\xe9").encode("latin-1"))
    with pytest.raises(ConfigError) as exc:
        load_config(f)
    assert str(f) in str(exc.value) and "UTF-8" in str(exc.value)


@pytest.mark.parametrize(
    ("snippet", "path"),
    [
        ("batch: {timeout_secs: .inf}", "sinks.out.batch.timeout_secs"),
        ("batch: {timeout_secs: .nan}", "sinks.out.batch.timeout_secs"),
        ("request: {timeout_secs: 1e23}", "sinks.out.request.timeout_secs"),
        ("request: {retry: {max_backoff_secs: 172800}}", "sinks.out.request.retry.max_backoff_secs"),
        ("batch: {max_bytes: 1.0e+23}", "sinks.out.batch.max_bytes"),
        ("buffer: {max_bytes: 1.0e+15}", "sinks.out.buffer.max_bytes"),
        ("batch: {max_events: 1.0e+12}", "sinks.out.batch.max_events"),
    ],
)
def test_non_finite_and_absurd_numbers_are_rejected(snippet: str, path: str) -> None:
    problems = _problems(BASE + f"    {snippet}\n", env={"OUT": "/o"})
    assert path in problems, problems


def test_non_finite_from_the_environment_and_in_free_fields() -> None:
    text = BASE + "shutdown_timeout_secs: ${T}\n"
    assert "shutdown_timeout_secs" in _problems(text, env={"OUT": "/o", "T": "inf"})
    text = BASE.replace("inputs: [app]", "inputs: [tag]") + (
        "transforms:\n  tag: {type: add_fields, inputs: [app], fields: {x: .nan}}\n"
    )
    assert "transforms.tag.fields.x" in _problems(text, env={"OUT": "/o"})


def test_sane_numbers_still_load() -> None:
    text = BASE + "    batch: {timeout_secs: 86400, max_bytes: 1.0e+6}\n    buffer: {max_bytes: 10737418240}\n"
    cfg = parse_config(text, env={"OUT": "/o"})
    assert cfg.sinks["out"].batch.max_bytes == 1_000_000


@pytest.mark.parametrize(
    ("api", "forwards", "clash"),
    [
        ("127.0.0.1:24224", ["127.0.0.1:24224"], "sources.f0.address"),
        ("127.0.0.1:9100", ["127.0.0.1:24224", "127.0.0.1:24224"], "sources.f1.address"),
        ("127.0.0.1:9100", ["0.0.0.0:24224", "127.0.0.1:24224"], "sources.f1.address"),
        ("0.0.0.0:9100", ["127.0.0.1:9100"], "sources.f0.address"),
        ("[::]:9100", ["127.0.0.1:9100"], "sources.f0.address"),
    ],
)
def test_listen_address_clashes(api: str, forwards: list[str], clash: str) -> None:
    srcs = "".join(f"  f{i}: {{type: forward, address: '{a}'}}\n" for i, a in enumerate(forwards))
    inputs = ", ".join(f"f{i}" for i in range(len(forwards)))
    text = f"api: {{address: '{api}'}}\nsources:\n{srcs}sinks:\n  out: {{type: file, inputs: [{inputs}], path: /o}}\n"
    problems = _problems(text)
    assert clash in problems and "same address" in problems[clash], problems


def test_distinct_or_ephemeral_addresses_do_not_clash() -> None:
    text = """api: {address: "127.0.0.1:9100"}
sources:
  a: {type: forward, address: "127.0.0.1:24224"}
  b: {type: forward, address: "127.0.0.2:24224"}
  c: {type: forward, address: "127.0.0.1:0"}
  d: {type: forward, address: "127.0.0.1:0"}
sinks:
  out: {type: file, inputs: [a, b, c, d], path: /o}
"""
    assert set(parse_config(text).sources) == {"a", "b", "c", "d"}
    assert parse_config(text.replace('"127.0.0.1:9100"', '"127.0.0.1:24224"', 1).replace(
        "api: {", "api: {enabled: false, "))


@pytest.mark.parametrize("text", ["\x08", "sources: {}\n\x00", "a: b\x1b[31m"])
def test_unprintable_characters_are_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={})
    assert "special characters are not allowed" in str(info.value)
