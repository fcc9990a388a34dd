"""``ecvi-logs retention``: make every backend keep N days (``apply``), report drift (``check``), and
delete archived Elasticsearch indices (``enforce``).

Exit codes: 0 ok, 1 drift, 2 usage, 3 a backend unreachable (its drift is unknown).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import yaml

from shipper.archive import days as days_mod
from shipper.config import ConfigError, ShipperConfig
from shipper.errors import BackendError, JobError
from shipper.jobs.cli.options import (
    BACKENDS,
    EndpointOptions,
    F,
    bucket_options,
    config_option,
    endpoint_options,
    load,
    open_archive,
    with_options,
)
from shipper.jobs.cli.output import Failed, Unreachable, emit, job_command
from shipper.jobs.endpoints import cloudwatch_settings, es_settings, loki_settings, pick_sink
from shipper.jobs.retention import cloudwatch as cw_retention
from shipper.jobs.retention import elasticsearch as es_retention
from shipper.jobs.retention import loki as loki_retention
from shipper.jobs.retention.report import Finding


@click.group("retention")
def retention() -> None:
    """Make every backend keep N days (default 30) and report drift.

    \b
    Examples:
      ecvi-logs retention apply --config shipper.yaml --loki-config /etc/loki/config.yaml
      ecvi-logs retention check --config shipper.yaml --json
      ecvi-logs retention enforce --config shipper.yaml --archive s3://ecvi-archive/es

    Exit codes: 0 ok, 1 drift, 2 usage, 3 a backend unreachable (see `retention check --help`).
    """


def _retention_options(fn: F) -> F:
    """The options ``retention apply`` and ``retention check`` share."""
    options = [
        config_option,
        click.option("--backend", "backends", multiple=True, type=click.Choice(BACKENDS),
                     help="Only these backends (repeatable); default: each one the config or flags name."),
        click.option("--days", type=click.IntRange(1), default=30, show_default=True, help="Days to keep."),
        endpoint_options,
        click.option("--loki-config", type=click.Path(dir_okay=False), default=None,
                     help="A Loki config file: apply writes the retention settings into it, check reads it."),
        click.option("--stream-retention", "stream_specs", multiple=True, metavar='SELECTOR=Nd',
                     help="""A Loki per-stream override, e.g. '{level="debug"}=7d' (repeatable)."""),
        click.option("--ilm-margin-days", type=click.IntRange(0), default=7, show_default=True,
                     help="Elasticsearch with ILM: the policy deletes this many days after --days, as a "
                          "backstop; `retention enforce` deletes archived indices at --days."),
        click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON."),
    ]
    return with_options(fn, options)


def _backends(requested: tuple[str, ...], config: ShipperConfig | None, ep: EndpointOptions,
              loki_config: str | None) -> list[str]:
    if requested:
        return list(requested)
    kinds = {s.type for s in config.sinks.values()} if config else set()
    chosen: list[str] = [b for b in BACKENDS if b in kinds]
    flags = {"loki": ep.loki_url or loki_config, "elasticsearch": ep.es_url, "cloudwatch": ep.cw_prefix}
    chosen += [b for b in BACKENDS if flags[b] and b not in chosen]
    if not chosen:
        raise click.UsageError("no backend: pass --config, --backend, or an endpoint flag")
    return chosen


def _check_running_loki(config: ShipperConfig | None, ep: EndpointOptions, days: int,
                        streams: list[loki_retention.StreamRetention]) -> list[Finding]:
    """Findings about the retention a running Loki reports on ``/config``."""
    ls = loki_settings(config, url=ep.loki_url, tenant=ep.tenant, sink_name=ep.sink_name)
    try:
        return list(loki_retention.check_running(ls.http, days, streams))
    finally:
        ls.http.close()


class _Findings(list[Finding]):
    """A retention command's findings, and the backends it could not ask."""

    def __init__(self) -> None:
        super().__init__()
        self.unreachable: list[dict[str, str]] = []

    @contextmanager
    def asking(self, backend: str) -> Iterator[None]:
        """One backend's part: a backend that cannot be reached is reported, and the others still asked."""
        try:
            yield
        except BackendError as exc:
            self.unreachable.append({"backend": backend, "error": str(exc)})


@contextmanager
def _findings_output(command: str, as_json: bool, days: int) -> Iterator[_Findings]:
    """Print the findings (JSON with --json, also when the command fails half way) and pick the exit
    code: 3 when a backend could not be asked (drift there is unknown), else 1 on drift, else 0."""
    findings = _Findings()
    doc: dict[str, Any] = {"command": command, "days": days}
    try:
        yield findings
    except (JobError, ValueError, ConfigError, click.UsageError) as exc:
        if as_json:
            error = exc.format_message() if isinstance(exc, click.UsageError) else str(exc)
            emit(True, doc | {"ok": False, "error": error, "findings": [f.to_json() for f in findings],
                               "unreachable": findings.unreachable}, [])
        raise
    ok = all(f.ok for f in findings) and not findings.unreachable
    drift = not all(f.ok for f in findings)
    verdict = "backend unreachable" if findings.unreachable else "drift found" if drift else "no drift"
    emit(as_json, doc | {"ok": ok, "findings": [f.to_json() for f in findings], "unreachable": findings.unreachable},
          [str(f) for f in findings] + [f"UNREACHABLE {u['backend']}: {u['error']}" for u in findings.unreachable]
          + [f"{command}: {verdict}"])
    if findings.unreachable:
        raise Unreachable
    if drift:
        raise Failed


@retention.command("apply")
@_retention_options
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
@job_command
def retention_apply(config_path: str | None, backends: tuple[str, ...], days: int, loki_config: str | None,
                    stream_specs: tuple[str, ...], ilm_margin_days: int, as_json: bool, dry_run: bool,
                    endpoints: EndpointOptions) -> None:
    """Install the retention of --days on each backend.

    Loki: writes compactor/limits settings into --loki-config (or prints them; restart Loki after),
    and reports drift of the running Loki's /config when its URL is known.
    Elasticsearch: ILM policy + index template (without ILM: the template; use `enforce`).
    CloudWatch Logs: PutRetentionPolicy on every group under the prefix.
    """
    config = load(config_path)
    streams = [loki_retention.StreamRetention.parse(s) for s in stream_specs]
    with _findings_output("retention apply", as_json, days) as findings:
        for backend in _backends(backends, config, endpoints, loki_config):
            with findings.asking(backend):
                _apply_backend(backend, findings, config, endpoints, days, streams, loki_config, dry_run,
                               as_json, ilm_margin_days)


def _apply_backend(backend: str, findings: list[Finding], config: ShipperConfig | None, ep: EndpointOptions, days: int,
                   streams: list[loki_retention.StreamRetention], loki_config: str | None, dry_run: bool,
                   as_json: bool, margin_days: int) -> None:
    if backend == "loki":
        findings += _apply_loki(days, streams, loki_config, dry_run, as_json)
        if loki_config is None and (ep.loki_url or pick_sink(config, "loki", ep.sink_name)):
            # Loki takes retention from its config file only: report what the running one uses.
            findings += _check_running_loki(config, ep, days, streams)
    elif backend == "elasticsearch":
        es = es_settings(config, url=ep.es_url, index=ep.index, sink_name=ep.sink_name)
        try:
            findings += es_retention.apply(es.http, es.target, days, margin_days=margin_days,
                                           dry_run=dry_run)
        finally:
            es.http.close()
    else:
        cw = cloudwatch_settings(config, prefix=ep.cw_prefix, region=ep.region,
                                 endpoint=ep.aws_endpoint, profile=ep.profile, sink_name=ep.sink_name)
        findings += cw_retention.apply(cw.client, cw.prefix, days, dry_run=dry_run)


def _apply_loki(days: int, streams: list[loki_retention.StreamRetention], loki_config: str | None, dry_run: bool,
                as_json: bool) -> list[Finding]:
    settings = loki_retention.retention_settings(days, streams)
    if loki_config is None:
        text = yaml.safe_dump(settings, sort_keys=False)
        if not as_json:
            click.echo("# Loki's retention settings (merge into its config, or pass --loki-config):\n" + text)
        return [Finding("loki", "(no --loki-config)", "retention settings", loki_retention.hours(days), "printed", True,
                        action="printed", note="merge them into the Loki config and restart Loki")]
    return loki_retention.apply_to_file(Path(loki_config), days, streams, dry_run=dry_run)


@retention.command("check")
@_retention_options
@job_command
def retention_check(config_path: str | None, backends: tuple[str, ...], days: int, loki_config: str | None,
                    stream_specs: tuple[str, ...], ilm_margin_days: int, as_json: bool,
                    endpoints: EndpointOptions) -> None:
    """Report drift from --days on each backend.

    Loki: the running Loki's /config (and --loki-config when given). Elasticsearch: the ILM policy,
    the template and indices past the policy. CloudWatch Logs: each group's retentionInDays.
    With --json a JSON document is printed whatever the outcome.

    \b
    Exit codes:
      0  no drift
      1  drift found (or another failure of the check, named on stderr)
      2  usage error (options, config file)
      3  a backend unreachable or answering with an error (its drift is unknown)
    """
    config = load(config_path)
    streams = [loki_retention.StreamRetention.parse(s) for s in stream_specs]
    with _findings_output("retention check", as_json, days) as findings:
        for backend in _backends(backends, config, endpoints, loki_config):
            with findings.asking(backend):
                _check_backend(backend, findings, config, endpoints, days, streams, loki_config, ilm_margin_days)


def _check_backend(backend: str, findings: list[Finding], config: ShipperConfig | None, ep: EndpointOptions, days: int,
                   streams: list[loki_retention.StreamRetention], loki_config: str | None, margin_days: int) -> None:
    if backend == "loki":
        if loki_config:
            current = loki_retention.read_config_file(Path(loki_config))
            findings += loki_retention.check_config(current, days, streams, loki_config)
        if ep.loki_url or pick_sink(config, "loki", ep.sink_name) is not None or not loki_config:
            findings += _check_running_loki(config, ep, days, streams)
    elif backend == "elasticsearch":
        es = es_settings(config, url=ep.es_url, index=ep.index, sink_name=ep.sink_name)
        try:
            findings += es_retention.check(es.http, es.target, days, now=days_mod.utcnow(),
                                           margin_days=margin_days)
        finally:
            es.http.close()
    else:
        cw = cloudwatch_settings(config, prefix=ep.cw_prefix, region=ep.region,
                                 endpoint=ep.aws_endpoint, profile=ep.profile, sink_name=ep.sink_name)
        findings += cw_retention.check(cw.client, cw.prefix, days)


@retention.command("enforce")
@config_option
@click.option("--archive", "archive_url", required=True,
              help="Where the days of these indices are archived (s3://bucket/prefix or file:///dir).")
@click.option("--days", type=click.IntRange(1), default=30, show_default=True, help="Days to keep.")
@click.option("--sink", "sink_name", default=None, help="Which elasticsearch sink of the config.")
@click.option("--es-url", default=None, help="Elasticsearch URL (overrides the config).")
@click.option("--index", default=None, help="Daily index name with strftime fields, e.g. ecvi-logs-%Y.%m.%d.")
@bucket_options
@click.option("--dry-run", is_flag=True, help="Show what would be deleted; delete nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@job_command
def retention_enforce(config_path: str | None, archive_url: str, days: int, sink_name: str | None,
                      es_url: str | None, index: str | None, region: str | None, profile: str | None,
                      s3_endpoint: str | None, dry_run: bool, as_json: bool) -> None:
    """Delete Elasticsearch daily indices older than --days, only where the day's archive verifies.

    For clusters without ILM. An index is deleted when its day has a manifest, the deep verify
    passes, and the archive holds all of the index's documents; otherwise it is kept and reported.
    """
    es = es_settings(load(config_path), url=es_url, index=index, sink_name=sink_name)
    store = open_archive(archive_url, region=region, s3_endpoint=s3_endpoint, profile=profile)
    try:
        with _findings_output("retention enforce", as_json, days) as findings, findings.asking("elasticsearch"):
            findings += es_retention.enforce(es.http, es.target, days, store, now=days_mod.utcnow(), dry_run=dry_run)
    finally:
        es.http.close()
        store.close()

