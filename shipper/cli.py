"""The ``ecvi-logs`` command line."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click
import orjson

from shipper import __version__
from shipper.config import ConfigError, load_config


def _setup_logging(level: str) -> None:
    import logging_config

    logging_config.configure(service="ecvi-logs-shipper", version=__version__, level=level, fmt="auto",
                             stream=sys.stderr)


def _load_or_exit(path: str) -> object:
    try:
        return load_config(path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
def validate(config_path: str) -> None:
    """Check a config file; exit 0 if valid, 2 listing every problem with its key path."""
    cfg = _load_or_exit(config_path)
    n = (len(cfg.sources), len(cfg.transforms), len(cfg.sinks))  # type: ignore[attr-defined]
    click.echo(f"{config_path}: valid ({n[0]} sources, {n[1]} transforms, {n[2]} sinks)")


@main.command()
@click.option("--config", "-c", "config_path", required=True, type=click.Path(dir_okay=False),
              help="Shipper config file (YAML).")
@click.option("--log-level", default="INFO", show_default=True, help="The shipper's own log level.")
def ship(config_path: str, log_level: str) -> None:
    """Run the shipper until SIGTERM (SIGHUP reloads the config)."""
    from shipper.runner import run_shipper

    cfg = _load_or_exit(config_path)
    _setup_logging(log_level)
    asyncio.run(run_shipper(cfg, config_path))  # type: ignore[arg-type]


@main.command()
@click.option("--config", "-c", "config_path", required=True, type=click.Path(dir_okay=False),
              help="Shipper config file (YAML).")
@click.option("--sink", "sink_name", default=None, help="Only events routed to this sink.")
@click.option("--limit", default=0, help="Stop after this many events (0: until Ctrl-C).")
def tap(config_path: str, sink_name: str | None, limit: int) -> None:
    """Print events as they would be sent (one JSON line each); send nothing, move no checkpoint."""
    from shipper.tap import run_tap

    cfg = _load_or_exit(config_path)
    if sink_name and sink_name not in cfg.sinks:  # type: ignore[attr-defined]
        click.echo(f"no sink named {sink_name!r}", err=True)
        sys.exit(2)
    asyncio.run(run_tap(cfg, sink_name, limit))  # type: ignore[arg-type]


@main.group("dead-letter")
def dead_letter() -> None:
    """Inspect and resend events that sinks gave up on."""


@dead_letter.command("list")
@click.option("--config", "-c", "config_path", required=True, type=click.Path(dir_okay=False))
@click.option("--sink", "sink_name", default=None, help="Only this sink.")
def dead_letter_list(config_path: str, sink_name: str | None) -> None:
    """Count dead-lettered events per sink and reason."""
    from shipper.sinks._common.dead_letter import dead_letter_path, read_dead_letters

    cfg = _load_or_exit(config_path)
    for name in cfg.sinks:  # type: ignore[attr-defined]
        if sink_name and name != sink_name:
            continue
        path = dead_letter_path(cfg.data_dir, name)  # type: ignore[attr-defined]
        reasons: dict[str, int] = {}
        for entry in read_dead_letters(path):
            r = entry.get("reason") or entry.get("error", "?")
            reasons[r] = reasons.get(r, 0) + 1
        total = sum(reasons.values())
        click.echo(f"{name}: {total} event(s) in {path}")
        for r, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
            click.echo(f"  {n:8d}  {r}")


@dead_letter.command("replay")
@click.option("--config", "-c", "config_path", required=True, type=click.Path(dir_okay=False))
@click.option("--sink", "sink_name", required=True, help="The sink whose dead letters to resend.")
def dead_letter_replay(config_path: str, sink_name: str) -> None:
    """Resend a sink's dead letters through it; what fails again stays in the file."""
    from shipper.sinks.replay import replay_dead_letters

    cfg = _load_or_exit(config_path)
    if sink_name not in cfg.sinks:  # type: ignore[attr-defined]
        click.echo(f"no sink named {sink_name!r}", err=True)
        sys.exit(2)
    sent, failed = asyncio.run(replay_dead_letters(cfg, sink_name))  # type: ignore[arg-type]
    click.echo(orjson.dumps({"sink": sink_name, "resent": sent, "failed_again": failed}).decode())
    sys.exit(0 if failed == 0 else 1)


@main.command()
@click.option("--workdir", default="./var", show_default=True, type=click.Path(file_okay=False),
              help="Where the demo writes its app log, checkpoints and output.")
@click.option("--api", "api_address", default="127.0.0.1:9100", show_default=True)
def demo(workdir: str, api_address: str) -> None:
    """Run a demo backend logging through logging_config, shipped into ./var/out (no server needed)."""
    from shipper.demo import run_demo

    run_demo(Path(workdir), api_address)


def _attach_groups() -> None:
    from pipelines.cli import render
    from shipper.jobs.cli import archive, retention

    for group in (retention, archive, render):
        main.add_command(group)


_attach_groups()

if __name__ == "__main__":  # pragma: no cover
    main()
