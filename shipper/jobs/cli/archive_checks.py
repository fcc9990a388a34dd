"""``ecvi-logs archive verify`` and ``archive gate``: is a day's archive whole, and may the backend delete it."""

from __future__ import annotations

from datetime import timedelta

import click

from shipper.archive import days as days_mod
from shipper.archive.days import parse_age, parse_day
from shipper.errors import JobError
from shipper.jobs.cli.options import (
    BACKENDS,
    EndpointOptions,
    config_option,
    endpoint_options,
    load,
    open_archive,
    store_options,
)
from shipper.jobs.cli.output import Failed, emit, job_command, verify_lines
from shipper.jobs.verify import read_manifest, verify_day


@click.command("verify")
@config_option
@click.option("--day", "day_text", required=True, metavar="YYYY-MM-DD", help="The UTC day to check.")
@click.option("--from", "from_url", required=True, help="Archive root: s3://bucket/prefix or file:///dir.")
@click.option("--backend", type=click.Choice(BACKENDS), default=None,
              help="Also compare counts with this backend (while it still holds the day); the archive's "
                   "recorded selectors, index pattern or log group prefix are used unless given.")
@endpoint_options
@store_options
@click.option("--selector", "selectors", multiple=True, help="Loki stream selector (as for archive run).")
@click.option("--quick", is_flag=True, help="Check sizes and stored checksums only (no download).")
@click.option("--version", "version", type=click.IntRange(1), default=None,
              help="Check a kept earlier version of the day (a day archived again after late lines).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@job_command
def archive_verify(config_path: str | None, day_text: str, from_url: str, backend: str | None,
                   s3_endpoint: str | None, selectors: tuple[str, ...], quick: bool, version: int | None,
                   as_json: bool, endpoints: EndpointOptions) -> None:
    """Re-read a day's objects and check every checksum and count against its manifest.

    Exit code 1 names every object that fails.
    """
    day = parse_day(day_text)
    store = open_archive(from_url, region=endpoints.region, s3_endpoint=s3_endpoint, profile=endpoints.profile)
    exporter = None
    if backend:
        try:
            manifest = read_manifest(store, day, version)
        except JobError:
            manifest = None  # verify_day reports it
        exporter = endpoints.exporter(backend, load(config_path), selectors=selectors,
                             recorded=manifest.source if manifest else None)
    try:
        report = verify_day(store, day, deep=not quick, exporter=exporter, version=version)
    finally:
        if exporter is not None:
            exporter.close()
        store.close()
    emit(as_json, report.to_json(), verify_lines(report))
    if not report.ok:
        raise Failed


@click.command("gate")
@config_option
@click.option("--backend", type=click.Choice(BACKENDS), required=True, help="The backend about to delete.")
@click.option("--from", "from_url", required=True, help="That backend's archive: s3://bucket/prefix or file:///dir.")
@click.option("--day", "day_text", default=None, metavar="YYYY-MM-DD", help="One UTC day about to be deleted.")
@click.option("--within", default=None, metavar="AGE",
              help="Every day the backend starts deleting in the next AGE (e.g. 3d), given --days.")
@click.option("--days", "retention_days", type=click.IntRange(1), default=30, show_default=True,
              help="The backend's retention, counted from a day's start.")
@endpoint_options
@store_options
@click.option("--selector", "selectors", multiple=True, help="Loki stream selector (as for archive run).")
@click.option("--quick", is_flag=True, help="Check sizes and stored checksums only (no download).")
@click.option("--json", "as_json", is_flag=True, help="Print the verdicts as JSON.")
@job_command
def archive_gate(config_path: str | None, backend: str, from_url: str, day_text: str | None, within: str | None,
                 retention_days: int, s3_endpoint: str | None, selectors: tuple[str, ...], quick: bool,
                 as_json: bool, endpoints: EndpointOptions) -> None:
    """Exit 0 only if every day about to be deleted has a verified archive holding what the backend has.

    The check `retention enforce` makes before deleting an index, for any other delete: run it before
    a manual delete, or from monitoring ahead of Loki's compactor or CloudWatch's retention.
    """
    from shipper.jobs.gate import may_delete

    if bool(day_text) == bool(within):
        raise click.UsageError("give exactly one of --day or --within")
    days = ([parse_day(day_text)] if day_text else
            days_mod.days_expiring_within(timedelta(days=retention_days), parse_age(within or "0d"), days_mod.utcnow()))
    store = open_archive(from_url, region=endpoints.region, s3_endpoint=s3_endpoint, profile=endpoints.profile)
    exporter = endpoints.exporter(backend, load(config_path), selectors=selectors)
    verdicts = []
    try:
        for day in days:
            try:
                counts = exporter.counts(day)
            except JobError as exc:
                verdicts.append((day, False, [f"cannot count the day in {backend}: {exc}"]))
                continue
            v = may_delete(store, day, backend, counts, deep=not quick)
            verdicts.append((day, v.ok, v.reasons))
    finally:
        exporter.close()
        store.close()
    ok = all(good for _, good, _ in verdicts)
    emit(as_json, {"command": "archive gate", "backend": backend, "archive": from_url, "ok": ok,
                    "days": [{"day": d.isoformat(), "ok": good, "reasons": why} for d, good, why in verdicts]},
          [f"{d} {'may be deleted' if good else 'KEEP'}" + "".join(f"\n    {r}" for r in why)
           for d, good, why in verdicts]
          + [f"archive gate: {'ok' if ok else 'not archived'} ({len(verdicts)} day(s))"])
    if not ok:
        raise Failed

