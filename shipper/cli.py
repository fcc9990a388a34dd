"""The ``ecvi-logs`` command line."""

from __future__ import annotations

import asyncio
import importlib
import sys
from pathlib import Path
from typing import NoReturn

import click
import orjson

from shipper import __version__
from shipper.config import ConfigError, ShipperConfig, load_config
from shipper.errors import ShipperError, StartupError
from shipper.logs import LEVELS, setup_logging


def _load_or_exit(path: str) -> ShipperConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)


def _fail(message: str) -> NoReturn:
    """Print one line and exit 2: an operator error, never a traceback."""
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


_MAX_PROBLEM_LINES = 20


class _Commands(click.Group):
    """The top-level commands; the job and render groups are imported only when named, so that
    ``ship`` starts without loading them."""

    lazy = {"archive": "shipper.jobs.cli", "retention": "shipper.jobs.cli", "render": "pipelines.cli"}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = self.lazy.get(cmd_name)
        if module is not None and cmd_name not in self.commands:
            self.add_command(getattr(importlib.import_module(module), cmd_name))
        return super().get_command(ctx, cmd_name)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ecvi-logs")
def main() -> None:
    """ecvi-logs: structured logs for the ECVI backend, shipped at least once.

    \b
    Examples:
      ecvi-logs validate --config shipper.yaml
      ecvi-logs ship --config shipper.yaml
      ecvi-logs tap --config shipper.yaml --sink loki
    """


@main.command()
@click.option("--config", "-c", "config_path", required=True, type=click.Path(dir_okay=False),
              help="Shipper config file (YAML).")
@click.option("--no-env", is_flag=True,
              help="Check the structure without the environment: ${VAR} takes its default or stays a "
                   "placeholder (for configs that name secrets, e.g. in CI).")
def validate(config_path: str, no_env: bool) -> None:
    """Check a config file; exit 0 if valid, 2 listing every problem with its key path.

    Beyond the file itself it checks what start-up needs: listen addresses that clash and a
    data_dir that cannot be a directory (under a regular file, or on /proc or /sys). Schema and
    graph problems (inputs that name nothing) are reported together.
    """
    from shipper.config.checks import data_dir_problems
    from shipper.config.load import load_config_checked

    try:
        cfg, subs = load_config_checked(config_path, {} if no_env else None, placeholders=no_env)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    problems = [] if "data_dir" in subs.placeholders else data_dir_problems(cfg.data_dir)
    if problems:
        click.echo(str(ConfigError(problems, config_path)), err=True)
        sys.exit(2)
    n = (len(cfg.sources), len(cfg.transforms), len(cfg.sinks))
    line = f"{config_path}: valid ({n[0]} sources, {n[1]} transforms, {n[2]} sinks)"
    names = sorted({f"${{{name}}}" for names in subs.placeholders.values() for name in names})
    if names:
        line += f"; not checked without the environment: {', '.join(names)}"
    click.echo(line)


@main.command()
@click.option("--config", "-c", "config_path", required=True, type=click.Path(dir_okay=False),
              help="Shipper config file (YAML).")
@click.option("--log-level", default="INFO", show_default=True, type=click.Choice(LEVELS, case_sensitive=False),
              help="The shipper's own log level.")
def ship(config_path: str, log_level: str) -> None:
    """Run the shipper until SIGTERM (SIGHUP reloads the config)."""
    from shipper.runner import run_shipper

    cfg = _load_or_exit(config_path)
    setup_logging(log_level.upper())
    try:
        asyncio.run(run_shipper(cfg, config_path))
    except StartupError as exc:
        _fail(str(exc))
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)


@main.command()
@click.option("--config", "-c", "config_path", required=True, type=click.Path(dir_okay=False),
              help="Shipper config file (YAML).")
@click.option("--sink", "sink_name", default=None, help="Only events routed to this sink.")
@click.option("--limit", default=0, help="Stop after this many events (0: until Ctrl-C).")
def tap(config_path: str, sink_name: str | None, limit: int) -> None:
    """Print events as they would be sent (one JSON line each); send nothing, move no checkpoint."""
    from shipper.tap import run_tap

    cfg = _load_or_exit(config_path)
    if sink_name and sink_name not in cfg.sinks:
        click.echo(f"no sink named {sink_name!r}", err=True)
        sys.exit(2)
    try:
        asyncio.run(run_tap(cfg, sink_name, limit))
    except StartupError as exc:
        _fail(str(exc))


@main.group("dead-letter")
def dead_letter() -> None:
    """Inspect and resend events that sinks gave up on."""


@dead_letter.command("list")
@click.option("--config", "-c", "config_path", required=True, type=click.Path(dir_okay=False),
              help="Shipper config file (YAML): its data_dir holds the dead letters.")
@click.option("--sink", "sink_name", default=None, help="Only this sink.")
def dead_letter_list(config_path: str, sink_name: str | None) -> None:
    """Count dead-lettered events per sink and reason (exit 2 when a line is not an entry)."""
    from shipper.sinks._common.dead_letter import dead_letter_files, read_lines

    cfg = _load_or_exit(config_path)
    damaged: list[str] = []
    for name in cfg.sinks:
        if sink_name and name != sink_name:
            continue
        files = dead_letter_files(cfg.data_dir, name)
        reasons: dict[str, int] = {}
        for path in files:
            for dl in read_lines(path):
                if dl.entry is None:
                    damaged.append(f"{path} {dl.problem}")
                    continue
                r = str(dl.entry.get("reason") or "?")
                reasons[r] = reasons.get(r, 0) + 1
        total = sum(reasons.values())
        click.echo(f"{name}: {total} event(s) in {', '.join(str(p) for p in files)}")
        for r, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
            click.echo(f"  {n:8d}  {r}")
    if damaged:
        _echo_problems(damaged, "line(s) not a dead-letter entry")
        sys.exit(2)


def _echo_problems(problems: list[str], what: str) -> None:
    for p in problems[:_MAX_PROBLEM_LINES]:
        click.echo(f"error: {p}", err=True)
    if len(problems) > _MAX_PROBLEM_LINES:
        click.echo(f"error: ... {len(problems) - _MAX_PROBLEM_LINES} more {what}", err=True)


@dead_letter.command("replay")
@click.option("--config", "-c", "config_path", required=True, type=click.Path(dir_okay=False),
              help="Shipper config file (YAML): the sink's settings and its data_dir's dead letters.")
@click.option("--sink", "sink_name", required=True, help="The sink whose dead letters to resend.")
def dead_letter_replay(config_path: str, sink_name: str) -> None:
    """Resend a sink's dead letters through it; what fails again stays in the file.

    Exit 0 when all were resent, 1 when some failed again, 2 when some lines cannot be resent
    (not JSON, no record): they stay in the file, each named on stderr.
    """
    from shipper.jobs.replay import replay_dead_letters

    cfg = _load_or_exit(config_path)
    if sink_name not in cfg.sinks:
        click.echo(f"no sink named {sink_name!r}", err=True)
        sys.exit(2)
    try:
        result = asyncio.run(replay_dead_letters(cfg, sink_name))
    except (ShipperError, OSError) as exc:
        _fail(str(exc))
    click.echo(orjson.dumps({"sink": sink_name, "resent": result.resent, "failed_again": result.failed_again,
                             "unreadable": result.unreadable}).decode())
    if result.problems:
        _echo_problems(result.problems, "line(s) that cannot be resent")
        sys.exit(2)
    sys.exit(0 if result.failed_again == 0 else 1)


@main.command()
@click.option("--workdir", default="./var", show_default=True, type=click.Path(file_okay=False),
              help="Where the demo writes its app log, checkpoints and output.")
@click.option("--api", "api_address", default="127.0.0.1:9100", show_default=True,
              help="Listen address of the demo shipper's /metrics, /health and /ready.")
def demo(workdir: str, api_address: str) -> None:
    """Run a demo backend logging through logging_config, shipped into ./var/out (no server needed)."""
    from shipper.demo import run_demo

    run_demo(Path(workdir), api_address)


if __name__ == "__main__":  # pragma: no cover
    main()
