"""``ecvi-logs archive``: the group, and archiving days (``run``, ``seal``) and the bucket's ``lifecycle``."""

from __future__ import annotations

from datetime import date, timedelta

import click

from shipper.archive import days as days_mod
from shipper.archive.days import parse_age
from shipper.archive.objects import DEFAULT_MAX_OBJECT_BYTES
from shipper.archive.storage.base import LockSettings
from shipper.config import ShipperConfig
from shipper.errors import JobError
from shipper.jobs.archive import DayResult, archive_day
from shipper.jobs.cli.options import (
    BACKENDS,
    EndpointOptions,
    bucket_options,
    config_option,
    days_options,
    endpoint_options,
    load,
    open_archive,
    selected_days,
    store_options,
)
from shipper.jobs.cli.output import Failed, ProgressBar, day_line, emit, job_command, summary
from shipper.jobs.slices import export_slice
from shipper.jobs.status import RunStatus, render, write_textfile
from shipper.jobs.verify import read_manifest


@click.group("archive")
def archive() -> None:
    """Archive UTC days to S3 or a directory, seal days archived at ingest, verify, restore.

    \b
    Examples:
      ecvi-logs archive run --config shipper.yaml --settled 26h --to s3://ecvi-archive/ --textfile /textfile/ecvi.prom
      ecvi-logs archive seal --older-than 26h --to s3://ecvi-archive/ingest
      ecvi-logs archive verify --day 2025-01-31 --from s3://ecvi-archive/loki --backend loki -c shipper.yaml
      ecvi-logs archive restore --day 2025-01-31 --from s3://ecvi-archive/es --target elasticsearch --endpoint http://es:9200
      ecvi-logs archive lifecycle --to s3://ecvi-archive/loki --expire-days 365
      ecvi-logs archive drill --day 2025-01-31 --from s3://ecvi-archive/loki --backend loki -c shipper.yaml

    Archive locations are --to where a command writes and --from where it reads; a restore's
    destination (a backend type) is --target.
    """


@archive.command("run")
@config_option
@click.option("--backend", type=click.Choice(BACKENDS), default=None,
              help="Where the days are read from, archived to --to itself. Default: every backend of the "
                   "config, each to <--to>/<backend>.")
@days_options
@click.option("--settled", default=None, metavar="AGE",
              help="Every day that ended at least AGE ago (e.g. 26h) and is still inside the backend's "
                   "retention (--days): new days are archived, archived ones checked for late lines.")
@click.option("--to", "to_url", required=True, help="Archive location: s3://bucket/prefix or file:///dir.")
@endpoint_options
@store_options
@click.option("--selector", "selectors", multiple=True,
              help='Loki stream selector listing the streams to archive (repeatable); default: from the loki sink.')
@click.option("--page-size", type=click.IntRange(1, 10000), default=None,
              help="Entries per Loki query / documents per Elasticsearch page (default 5000).")
@click.option("--max-object-mib", type=click.IntRange(1, 1024), default=DEFAULT_MAX_OBJECT_BYTES // 1048576,
              show_default=True, help="Largest uncompressed size of one object.")
@click.option("--object-lock", type=click.Choice(["compliance", "governance"]), default=None,
              help="S3 Object Lock mode on every object (the bucket must have Object Lock enabled).")
@click.option("--lock-days", type=click.IntRange(1), default=None, help="Object Lock retention in days.")
@click.option("--days", "retention_days", type=click.IntRange(1), default=30, show_default=True,
              help="The backend's retention: an unarchived day older than this is partial and skipped.")
@click.option("--force", is_flag=True, help="Export days again even if archived, or past the backend's retention.")
@click.option("--late-check/--no-late-check", default=True, show_default=True,
              help="Compare the backend's counts of archived days with their manifests; archive a day "
                   "that gained lines again, as a new version.")
@click.option("--concurrency", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Units (streams, indices, log groups) exported side by side in this process.")
@click.option("--slices", type=click.IntRange(1, 1024), default=1, show_default=True,
              help="Split each new day across this many workers (a Kubernetes Indexed Job with as many "
                   "completions); the last worker to finish merges the day's manifest.")
@click.option("--slice-index", type=click.IntRange(0), envvar="JOB_COMPLETION_INDEX", default=0, show_default=True,
              help="This worker's slice (an Indexed Job sets JOB_COMPLETION_INDEX).")
@click.option("--textfile", type=click.Path(dir_okay=False), default=None,
              help="Write the results for node-exporter's textfile collector (a .prom file), for the "
                   "EcviLogsArchiveBehind and EcviLogsArchiveStale alerts.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@job_command
def archive_run(config_path: str | None, backend: str | None, day_text: str | None, older_than: str | None,
                lookback: int, settled: str | None, to_url: str, s3_endpoint: str | None, selectors: tuple[str, ...],
                page_size: int | None, max_object_mib: int, object_lock: str | None, lock_days: int | None,
                retention_days: int, force: bool, late_check: bool, concurrency: int, slices: int, slice_index: int,
                textfile: str | None, as_json: bool, endpoints: EndpointOptions) -> None:
    """Export each UTC day from a backend as gzip NDJSON objects plus a manifest.json.

    Each day's manifest is read back and every object's size and SHA-256 checked before the day
    counts as archived; a run after a crash picks up where it stopped. A day already archived is
    checked for late lines (the backend's counts against the manifest) and, when it gained lines,
    archived again as a new version beside the previous one. Run it daily with --settled 26h: every
    day is archived a day after it ended and retried every night until the backend deletes it.
    """
    if (object_lock is None) != (lock_days is None):
        raise click.UsageError("--object-lock and --lock-days go together")
    if slice_index >= slices:
        raise click.UsageError(f"--slice-index {slice_index} is not below --slices {slices}")
    days = selected_days(day_text, older_than, lookback, settled, retention_days, allow_settled=True)
    config = load(config_path)
    if backend:
        targets = [(backend, to_url)]
    else:
        kinds = {s.type for s in config.sinks.values()} if config else set()
        targets = [(b, to_url.rstrip("/") + "/" + b) for b in BACKENDS if b in kinds]
        if not targets:
            raise click.UsageError("no backend: pass --backend, or a --config with a loki, elasticsearch or "
                                   "cloudwatch sink")
    lock = LockSettings(object_lock, lock_days) if object_lock and lock_days else None  # type: ignore[arg-type]
    results: list[DayResult] = []
    statuses: list[RunStatus] = []
    for name, url in targets:
        mine = _archive_backend(name, url, config, endpoints, days, lock=lock, s3_endpoint=s3_endpoint,
                                selectors=selectors,
                                page_size=page_size, max_object_mib=max_object_mib, retention_days=retention_days,
                                force=force, late_check=late_check, prefix="" if backend else f"{name} → {url}: ",
                                quiet=as_json, concurrency=concurrency, slices=(slice_index, slices))
        results += mine
        statuses.append(RunStatus(name, mine[0].archive if mine else url, mine, days_mod.utcnow(),
                                  parse_age(settled) if settled else timedelta(0), timedelta(days=retention_days)))
    if textfile:
        write_textfile(textfile, render(statuses))
    doc = summary("archive run", results)
    doc |= {"rearchived": [f"{r.backend} {r.day}" for r in results if r.status == "rearchived"],
            "rearchive_pending": [f"{r.backend} {r.day}" for r in results if r.rearchive_pending],
            "late_check_seconds": round(sum(r.late_check_seconds or 0.0 for r in results), 3)}
    if as_json:
        emit(True, doc, [])
    elif doc["events_per_second"]:
        click.echo(f"total: {doc['events']} events in {doc['seconds']}s: {doc['events_per_second']} events/s, "
                   f"{doc['mib_per_second']} MiB/s")
    if not doc["ok"]:
        raise Failed


def _archive_backend(name: str, url: str, config: ShipperConfig | None, endpoints: EndpointOptions,
                     days: list[date], *,
                     lock: LockSettings | None, s3_endpoint: str | None, selectors: tuple[str, ...],
                     page_size: int | None, max_object_mib: int, retention_days: int, force: bool, late_check: bool,
                     prefix: str, quiet: bool, concurrency: int = 1, slices: tuple[int, int] = (0, 1),
                     ) -> list[DayResult]:
    """One backend's days; a backend or store that cannot even be opened fails each of its days."""
    results = []
    try:
        store = open_archive(url, region=endpoints.region, s3_endpoint=s3_endpoint, profile=endpoints.profile,
                             lock=lock)
    except JobError as exc:
        results = [DayResult(day, "failed", error=str(exc), backend=name, archive=url) for day in days]
    else:
        try:
            exporter = endpoints.exporter(name, config, selectors=selectors, page_size=page_size)
            try:
                index, count = slices
                for day in days:
                    if count > 1 and not force and (index != 0 or read_manifest(store, day) is None):
                        result = export_slice(exporter, store, day, index=index, slices=count, now=days_mod.utcnow(),
                                              max_object_bytes=max_object_mib * 1048576, concurrency=concurrency,
                                              progress=ProgressBar())
                    else:
                        result = archive_day(exporter, store, day, now=days_mod.utcnow(),
                                             retention=timedelta(days=retention_days),
                                             max_object_bytes=max_object_mib * 1048576, force=force,
                                             progress=ProgressBar(),
                                             late_check=late_check, concurrency=concurrency)
                    result.backend, result.archive = name, store.url
                    results.append(result)
                    if not quiet:
                        click.echo(prefix + day_line(result))
            finally:
                exporter.close()
        finally:
            store.close()
    return results



@archive.command("seal")
@days_options
@click.option("--to", "to_url", required=True, help="The s3 sink's archive root: s3://bucket/prefix or file:///dir.")
@bucket_options
@click.option("--force", is_flag=True, help="Seal even if the day is not over or listed objects are gone.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@job_command
def archive_seal(day_text: str | None, older_than: str | None, lookback: int, to_url: str, region: str | None,
                 profile: str | None, s3_endpoint: str | None, force: bool, as_json: bool) -> None:
    """Write the manifest of days the s3 sink archived at ingest (counting and hashing its objects).

    Seal a day once every shipper has written it, e.g. daily with --older-than 26h.
    """
    from shipper.jobs.seal import seal_day

    store = open_archive(to_url, region=region, s3_endpoint=s3_endpoint, profile=profile)
    results = []
    try:
        for day in selected_days(day_text, older_than, lookback):
            result = seal_day(store, day, now=days_mod.utcnow(), force=force)
            results.append(result)
            if not as_json:
                click.echo(day_line(result))
    finally:
        store.close()
    doc = summary("archive seal", results, archive=store.url)
    if as_json:
        emit(True, doc, [])
    if not doc["ok"]:
        raise Failed



@archive.command("lifecycle")
@click.option("--to", "to_url", required=True, help="Archive root: s3://bucket/prefix.")
@click.option("--expire-days", required=True, type=click.IntRange(1), help="Delete archive objects this old.")
@bucket_options
@click.option("--json", "as_json", is_flag=True, help="Print the rule as JSON.")
@job_command
def archive_lifecycle(to_url: str, expire_days: int, region: str | None, profile: str | None,
                      s3_endpoint: str | None, as_json: bool) -> None:
    """Set the archive bucket's lifecycle rule that expires objects under the prefix."""
    from shipper.archive.storage.s3 import S3Store

    store = open_archive(to_url, region=region, s3_endpoint=s3_endpoint, profile=profile)
    try:
        if not isinstance(store, S3Store):
            raise click.UsageError("archive lifecycle needs an s3:// archive (a directory has no lifecycle rules)")
        rule = store.set_expiry(expire_days)
    finally:
        store.close()
    emit(as_json, {"bucket": store.bucket, "rule": rule},
          [f"{store.url}: objects expire {expire_days} days after creation (rule {rule['ID']})"])


