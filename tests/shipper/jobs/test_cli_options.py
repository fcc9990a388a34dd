"""The jobs CLI's shared flags arrive as typed option objects, and its modules stay small."""

from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from shipper.jobs import cli as jobs_cli
from shipper.jobs import endpoints as endpoints_mod
from shipper.jobs.cli.options import EndpointOptions, endpoint_options

from ._support import ScriptedExporter, sample_units


def test_endpoint_flags_arrive_as_one_typed_object() -> None:
    seen: list[EndpointOptions] = []

    @click.command()
    @click.option("--other", default="x")
    @endpoint_options
    def command(other: str, endpoints: EndpointOptions) -> None:
        seen.append(endpoints)

    result = CliRunner().invoke(command, ["--loki-url", "http://loki:3100", "--tenant", "t1", "--region", "eu",
                                          "--sink", "main"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert seen == [EndpointOptions(sink_name="main", loki_url="http://loki:3100", tenant="t1", region="eu")]


def test_archive_verify_hands_the_endpoint_flags_to_the_exporter(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []

    def fake(backend: str, config: object, **kw: Any) -> ScriptedExporter:
        calls.append({"backend": backend, **kw})
        return ScriptedExporter(sample_units(), backend)

    monkeypatch.setattr(endpoints_mod, "open_exporter", fake)
    group = click.Group("ecvi-logs", commands=jobs_cli.COMMANDS)
    CliRunner().invoke(group, ["archive", "verify", "--day", "2025-01-15", "--from", tmp_path.as_uri(),
                               "--backend", "elasticsearch", "--es-url", "http://es:9200", "--index", "x-%Y",
                               "--selector", '{a="b"}'])
    assert len(calls) == 1
    assert {k: calls[0][k] for k in ("backend", "es_url", "index", "loki_url", "selectors")} == {
        "backend": "elasticsearch", "es_url": "http://es:9200", "index": "x-%Y", "loki_url": None,
        "selectors": ('{a="b"}',)}


def test_no_cli_module_over_400_lines() -> None:
    package = Path(jobs_cli.__file__).parent
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in package.glob("*.py")}
    assert sizes and max(sizes.values()) <= 400, sizes
