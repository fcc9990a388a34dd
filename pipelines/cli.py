"""``ecvi-logs render``: turn a shipper config into another tool's configuration."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import yaml

from shipper.config import ConfigError, load_config


@click.group("render")
def render() -> None:
    """Render a shipper config as another log agent's configuration.

    \b
    Examples:
      ecvi-logs render vector --config shipper.yaml -o vector.yaml
      vector validate --no-environment --dangerously-allow-env-var-interpolation vector.yaml
      vector test --dangerously-allow-env-var-interpolation vector.yaml

    The rendered file keeps the config's ${VAR} references, which Vector 0.57 and later
    interpolate only with --dangerously-allow-env-var-interpolation; --no-environment skips the
    checks that need the sinks' backends.
    """


def _version(value: str) -> tuple[int, int]:
    try:
        major, minor = value.split(".")[:2]
        return int(major), int(minor)
    except ValueError:
        raise click.BadParameter(f"expected MAJOR.MINOR such as 0.57, got {value!r}") from None


@render.command("vector")
@click.option("--config", "-c", "config_path", required=True, type=click.Path(dir_okay=False),
              help="Shipper config file (YAML); validated like `ecvi-logs validate`.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the Vector config here instead of standard output.")
@click.option("--vector-version", default="0.57", show_default=True,
              help="Oldest Vector the output must load in (0.57+ needs the template-confinement opt-out).")
@click.option("--kubernetes-logs", is_flag=True,
              help="Read kubelet logs with Vector's kubernetes_logs source (API metadata, needs RBAC, "
                   "best-effort delivery) instead of the file source.")
@click.option("--no-tests", is_flag=True, help="Leave out the tests: section (vector test).")
def vector(config_path: str, output: str | None, vector_version: str, kubernetes_logs: bool, no_tests: bool) -> None:
    """Render an equivalent Vector config: sources, the parsing/redacting remaps, sinks with the
    same labels, ids, limits and disk buffers, end-to-end acknowledgements, and unit tests.

    Values written as ${VAR} in the shipper config stay references for Vector to resolve; the
    other variables must be set (the config is validated with them)."""
    from pipelines.vector import RenderOptions, render_vector

    try:
        cfg = load_config(config_path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    raw = yaml.safe_load(Path(config_path).read_text(encoding="utf-8"))
    options = RenderOptions(vector_version=_version(vector_version), kubernetes_logs=kubernetes_logs,
                            with_tests=not no_tests)
    rendered = render_vector(cfg, raw if isinstance(raw, dict) else None, options)
    text = rendered.to_yaml()
    if output:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"{output}: {len(rendered.config['sources'])} sources, {len(rendered.config['transforms'])} "
                   f"transforms, {len(rendered.config['sinks'])} sinks, {len(rendered.notes)} note(s)", err=True)
    else:
        click.echo(text, nl=False)
