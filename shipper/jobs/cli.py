"""``ecvi-logs retention …`` and ``ecvi-logs archive …``: the operator commands of the jobs.

Exit codes: 0 done (or nothing to do), 1 drift, a failed day, or a verify problem, 2 bad usage,
3 (retention commands) a backend that could not be reached or answered with an error.
"""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TypeVar, cast

import click
import orjson
import yaml

from shipper import __version__
from shipper.archive import days as days_mod
from shipper.archive.days import parse_age, parse_day, utcnow
from shipper.archive.objects import DEFAULT_MAX_OBJECT_BYTES
from shipper.archive.storage.base import LockSettings, ObjectStore
from shipper.archive.storage.url import open_store
from shipper.config import ConfigError, ShipperConfig, load_config
from shipper.jobs.archive import DayResult, archive_day
from shipper.jobs.endpoints import cloudwatch_settings, es_settings, loki_settings, pick_sink
from shipper.jobs.errors import BackendError, JobError
from shipper.jobs.exporters.base import Exporter
from shipper.jobs.retention import cloudwatch as cw_retention
from shipper.jobs.retention import elasticsearch as es_retention
from shipper.jobs.retention import loki as loki_retention
from shipper.jobs.retention.report import Finding
from shipper.jobs.slices import export_slice
from shipper.jobs.status import RunStatus, render, write_textfile
from shipper.jobs.verify import VerifyReport, read_manifest, verify_day

F = TypeVar("F", bound=Callable[..., Any])
BACKENDS = ("loki", "elasticsearch", "cloudwatch")


class _Failed(Exception):
    """A command finished and wants exit code 1 (its output already says why)."""


class _Unreachable(Exception):
    """A retention command could not ask every backend and wants exit code 3 (its output says which)."""


EXIT_UNREACHABLE = 3


def _job_command(fn: F) -> F:
    """Turn the jobs' errors into a message and an exit code instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except _Failed:
            sys.exit(1)
        except _Unreachable:
            sys.exit(EXIT_UNREACHABLE)
        except ConfigError as exc:
            click.echo(str(exc), err=True)
            sys.exit(2)
        except (JobError, ValueError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2 if isinstance(exc, ValueError) else 1)

    return cast(F, wrapper)


def _load(config_path: str | None) -> ShipperConfig | None:
    return load_config(config_path) if config_path else None


def _emit(as_json: bool, doc: dict[str, Any], lines: list[str]) -> None:
    if as_json:
        click.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2, default=str).decode())
    else:
        for line in lines:
            click.echo(line)


# -- shared options ---------------------------------------------------------------------------------

def _config_option(fn: F) -> F:
    return click.option("--config", "-c", "config_path", type=click.Path(dir_okay=False, exists=True),
                        help="Shipper config (YAML): backend endpoints, auth and TLS come from its sinks.")(fn)


def _check_running_loki(config: Any, kw: dict[str, Any], days: int, streams: Any) -> list[Any]:
    """Findings about the retention a running Loki reports on ``/config``."""
    ls = loki_settings(config, url=kw["loki_url"], tenant=kw["tenant"], sink_name=kw["sink_name"])
    try:
        return list(loki_retention.check_running(ls.http, days, streams))
    finally:
        ls.http.close()


def _with_options(fn: F, options: Sequence[Callable[[Any], Any]]) -> F:
    """Apply click options in the order they are listed (as stacked decorators would)."""
    for option in reversed(options):
        fn = option(fn)
    return fn


def _endpoint_options(fn: F) -> F:
    options = [
        click.option("--sink", "sink_name", default=None, help="Which sink of the config, when it has several."),
        click.option("--loki-url", default=None, help="Loki base URL (overrides the config)."),
        click.option("--tenant", default=None, help="Loki tenant (X-Scope-OrgID)."),
        click.option("--es-url", default=None, help="Elasticsearch URL (overrides the config)."),
        click.option("--index", "index", default=None,
                     help="Elasticsearch index name with strftime fields, e.g. ecvi-logs-%Y.%m.%d."),
        click.option("--cw-prefix", default=None, help="CloudWatch log group prefix, e.g. /ecvi/."),
        click.option("--region", default=None, help="AWS region (CloudWatch Logs, S3)."),
        click.option("--aws-endpoint", default=None, help="CloudWatch Logs endpoint override."),
        click.option("--profile", default=None, help="AWS profile."),
    ]
    return _with_options(fn, options)


def _store_options(fn: F) -> F:
    options = [
        click.option("--s3-endpoint", default=None, help="S3 endpoint override (MinIO, tests)."),
    ]
    return _with_options(fn, options)


def _days_options(fn: F) -> F:
    options = [
        click.option("--day", "day_text", default=None, metavar="YYYY-MM-DD", help="One UTC day."),
        click.option("--older-than", "older_than", default=None, metavar="AGE",
                     help="Every day whose start is at least AGE ago (e.g. 29d), over --lookback days."),
        click.option("--lookback", default=7, show_default=True, type=click.IntRange(1, 366),
                     help="With --older-than: how many days back to look (catches up missed runs)."),
    ]
    return _with_options(fn, options)


def _selected_days(day_text: str | None, older_than: str | None, lookback: int, settled: str | None = None,
                   retention_days: int = 30, allow_settled: bool = False) -> list[date]:
    if sum(1 for v in (day_text, older_than, settled) if v) != 1:
        raise click.UsageError("give exactly one of --day, --older-than" + (" or --settled" if allow_settled else ""))
    if day_text:
        return [parse_day(day_text)]
    if settled:
        return days_mod.settled_days(parse_age(settled), utcnow(), timedelta(days=retention_days))
    assert older_than is not None
    return days_mod.days_older_than(parse_age(older_than), utcnow(), lookback)


def _open(url: str, *, region: str | None, s3_endpoint: str | None, profile: str | None,
          lock: LockSettings | None = None) -> ObjectStore:
    return open_store(url, lock=lock, region=region, endpoint=s3_endpoint, profile=profile)


def _exporter(backend: str, config: ShipperConfig | None, kw: dict[str, Any], *, selectors: tuple[str, ...] = (),
              page_size: int | None = None, recorded: dict[str, Any] | None = None) -> Exporter:
    """The backend's exporter from flags, then the config's sink; ``recorded`` (a manifest's source)
    fills in what a check of that archive must reuse: the selectors, tenant, index pattern, prefix."""
    rec = recorded if recorded and recorded.get("backend") == backend else {}
    has_sink = pick_sink(config, backend, kw["sink_name"]) is not None
    if backend == "loki":
        from shipper.jobs.exporters.loki import MAX_LIMIT, LokiExporter

        ls = loki_settings(config, url=kw["loki_url"] or (None if has_sink else rec.get("endpoint")),
                           tenant=kw["tenant"] or rec.get("tenant"),
                           selectors=selectors or tuple(rec.get("selectors") or ()), sink_name=kw["sink_name"])
        size = page_size or MAX_LIMIT
        return LokiExporter(ls.http, selectors=ls.selectors, tenant=ls.tenant, page_size=size,
                            max_page_size=max(size, MAX_LIMIT))
    if backend == "elasticsearch":
        from shipper.jobs.exporters.elasticsearch import PAGE_SIZE, ElasticsearchExporter

        es = es_settings(config, url=kw["es_url"] or (None if has_sink else rec.get("endpoint")), index=kw["index"],
                         sink_name=kw["sink_name"])
        pattern = rec["pattern"] if rec.get("pattern") and not kw["index"] else es.sink.index_pattern
        return ElasticsearchExporter(es.http, pattern=pattern, page_size=page_size or PAGE_SIZE)
    from shipper.jobs.exporters.cloudwatch import CloudWatchExporter

    cw = cloudwatch_settings(config, prefix=kw["cw_prefix"] or rec.get("group_prefix"),
                             region=kw["region"] or rec.get("region"), endpoint=kw["aws_endpoint"],
                             profile=kw["profile"], sink_name=kw["sink_name"])
    return CloudWatchExporter(cw.client, prefix=cw.prefix, region=cw.region)


class _Bar:
    """A click progress bar on stderr when it is a terminal; nothing otherwise."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self._bar: Any = None

    def start(self, label: str, total: int) -> None:
        if self.enabled and total:
            self._bar = click.progressbar(length=total, label=label, file=sys.stderr, show_pos=True,
                                          item_show_func=lambda item: item)
            self._bar.__enter__()

    def unit_done(self, events: int) -> None:
        if self._bar is not None:
            self._bar.update(1, f"{events} events")

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None


def _day_line(r: DayResult) -> str:
    text = (f"{r.day} {r.status}: {r.events} events, {r.objects} objects, {r.bytes / 1048576:.2f} MiB "
            f"({r.uncompressed_bytes / 1048576:.2f} MiB uncompressed) in {r.seconds:.1f}s")
    if r.reused:
        text += f", {r.reused} objects already there"
    if r.version > 1:
        text += f", version {r.version}"
    if r.changed_units:
        text += f", {r.late_events} late events in {len(r.changed_units)} unit(s)"
    if r.rearchive_pending:
        text += ", archive again pending"
    if r.error:
        text += f" — {r.error}"
    for p in r.problems:
        text += f"\n    {p}"
    return text


def _summary(command: str, results: list[DayResult], **extra: Any) -> dict[str, Any]:
    done = [r for r in results if r.status in ("archived", "sealed")]
    seconds = sum(r.seconds for r in done)
    events = sum(r.events for r in done)
    raw = sum(r.uncompressed_bytes for r in done)
    return {
        "command": command, "version": __version__, **extra,
        "ok": all(r.status != "failed" for r in results),
        "days": [r.to_json() for r in results],
        "events": events, "bytes": sum(r.bytes for r in done), "uncompressed_bytes": raw,
        "seconds": round(seconds, 3),
        "events_per_second": round(events / seconds, 1) if seconds else None,
        "mib_per_second": round(raw / seconds / 1048576, 2) if seconds else None,
    }


# -- archive ----------------------------------------------------------------------------------------

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
@_config_option
@click.option("--backend", type=click.Choice(BACKENDS), default=None,
              help="Where the days are read from, archived to --to itself. Default: every backend of the "
                   "config, each to <--to>/<backend>.")
@_days_options
@click.option("--settled", default=None, metavar="AGE",
              help="Every day that ended at least AGE ago (e.g. 26h) and is still inside the backend's "
                   "retention (--days): new days are archived, archived ones checked for late lines.")
@click.option("--to", "to_url", required=True, help="Archive location: s3://bucket/prefix or file:///dir.")
@_endpoint_options
@_store_options
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
@_job_command
def archive_run(config_path: str | None, backend: str | None, day_text: str | None, older_than: str | None,
                lookback: int, settled: str | None, to_url: str, s3_endpoint: str | None, selectors: tuple[str, ...],
                page_size: int | None, max_object_mib: int, object_lock: str | None, lock_days: int | None,
                retention_days: int, force: bool, late_check: bool, concurrency: int, slices: int, slice_index: int,
                textfile: str | None, as_json: bool, **kw: Any) -> None:
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
    days = _selected_days(day_text, older_than, lookback, settled, retention_days, allow_settled=True)
    config = _load(config_path)
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
        mine = _archive_backend(name, url, config, kw, days, lock=lock, s3_endpoint=s3_endpoint, selectors=selectors,
                                page_size=page_size, max_object_mib=max_object_mib, retention_days=retention_days,
                                force=force, late_check=late_check, prefix="" if backend else f"{name} → {url}: ",
                                quiet=as_json, concurrency=concurrency, slices=(slice_index, slices))
        results += mine
        statuses.append(RunStatus(name, mine[0].archive if mine else url, mine, utcnow(),
                                  parse_age(settled) if settled else timedelta(0), timedelta(days=retention_days)))
    if textfile:
        write_textfile(textfile, render(statuses))
    doc = _summary("archive run", results)
    doc |= {"rearchived": [f"{r.backend} {r.day}" for r in results if r.status == "rearchived"],
            "rearchive_pending": [f"{r.backend} {r.day}" for r in results if r.rearchive_pending],
            "late_check_seconds": round(sum(r.late_check_seconds or 0.0 for r in results), 3)}
    if as_json:
        _emit(True, doc, [])
    elif doc["events_per_second"]:
        click.echo(f"total: {doc['events']} events in {doc['seconds']}s: {doc['events_per_second']} events/s, "
                   f"{doc['mib_per_second']} MiB/s")
    if not doc["ok"]:
        raise _Failed


def _archive_backend(name: str, url: str, config: ShipperConfig | None, kw: dict[str, Any], days: list[date], *,
                     lock: LockSettings | None, s3_endpoint: str | None, selectors: tuple[str, ...],
                     page_size: int | None, max_object_mib: int, retention_days: int, force: bool, late_check: bool,
                     prefix: str, quiet: bool, concurrency: int = 1, slices: tuple[int, int] = (0, 1),
                     ) -> list[DayResult]:
    """One backend's days; a backend or store that cannot even be opened fails each of its days."""
    results = []
    try:
        store = _open(url, region=kw["region"], s3_endpoint=s3_endpoint, profile=kw["profile"], lock=lock)
    except JobError as exc:
        results = [DayResult(day, "failed", error=str(exc), backend=name, archive=url) for day in days]
    else:
        try:
            exporter = _exporter(name, config, kw, selectors=selectors, page_size=page_size)
            try:
                index, count = slices
                for day in days:
                    if count > 1 and not force and (index != 0 or read_manifest(store, day) is None):
                        result = export_slice(exporter, store, day, index=index, slices=count, now=utcnow(),
                                              max_object_bytes=max_object_mib * 1048576, concurrency=concurrency,
                                              progress=_Bar())
                    else:
                        result = archive_day(exporter, store, day, now=utcnow(),
                                             retention=timedelta(days=retention_days),
                                             max_object_bytes=max_object_mib * 1048576, force=force, progress=_Bar(),
                                             late_check=late_check, concurrency=concurrency)
                    result.backend, result.archive = name, store.url
                    results.append(result)
                    if not quiet:
                        click.echo(prefix + _day_line(result))
            finally:
                exporter.close()
        finally:
            store.close()
    return results


@archive.command("seal")
@_days_options
@click.option("--to", "to_url", required=True, help="The s3 sink's archive root: s3://bucket/prefix or file:///dir.")
@click.option("--region", default=None, help="AWS region of the bucket.")
@click.option("--profile", default=None, help="AWS profile.")
@_store_options
@click.option("--force", is_flag=True, help="Seal even if the day is not over or listed objects are gone.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@_job_command
def archive_seal(day_text: str | None, older_than: str | None, lookback: int, to_url: str, region: str | None,
                 profile: str | None, s3_endpoint: str | None, force: bool, as_json: bool) -> None:
    """Write the manifest of days the s3 sink archived at ingest (counting and hashing its objects).

    Seal a day once every shipper has written it, e.g. daily with --older-than 26h.
    """
    from shipper.jobs.seal import seal_day

    store = _open(to_url, region=region, s3_endpoint=s3_endpoint, profile=profile)
    results = []
    try:
        for day in _selected_days(day_text, older_than, lookback):
            result = seal_day(store, day, now=utcnow(), force=force)
            results.append(result)
            if not as_json:
                click.echo(_day_line(result))
    finally:
        store.close()
    doc = _summary("archive seal", results, archive=store.url)
    if as_json:
        _emit(True, doc, [])
    if not doc["ok"]:
        raise _Failed


@archive.command("verify")
@_config_option
@click.option("--day", "day_text", required=True, metavar="YYYY-MM-DD", help="The UTC day to check.")
@click.option("--from", "from_url", required=True, help="Archive root: s3://bucket/prefix or file:///dir.")
@click.option("--backend", type=click.Choice(BACKENDS), default=None,
              help="Also compare counts with this backend (while it still holds the day); the archive's "
                   "recorded selectors, index pattern or log group prefix are used unless given.")
@_endpoint_options
@_store_options
@click.option("--selector", "selectors", multiple=True, help="Loki stream selector (as for archive run).")
@click.option("--quick", is_flag=True, help="Check sizes and stored checksums only (no download).")
@click.option("--version", "version", type=click.IntRange(1), default=None,
              help="Check a kept earlier version of the day (a day archived again after late lines).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@_job_command
def archive_verify(config_path: str | None, day_text: str, from_url: str, backend: str | None,
                   s3_endpoint: str | None, selectors: tuple[str, ...], quick: bool, version: int | None,
                   as_json: bool, **kw: Any) -> None:
    """Re-read a day's objects and check every checksum and count against its manifest.

    Exit code 1 names every object that fails.
    """
    day = parse_day(day_text)
    store = _open(from_url, region=kw["region"], s3_endpoint=s3_endpoint, profile=kw["profile"])
    exporter = None
    if backend:
        try:
            manifest = read_manifest(store, day, version)
        except JobError:
            manifest = None  # verify_day reports it
        exporter = _exporter(backend, _load(config_path), kw, selectors=selectors,
                             recorded=manifest.source if manifest else None)
    try:
        report = verify_day(store, day, deep=not quick, exporter=exporter, version=version)
    finally:
        if exporter is not None:
            exporter.close()
        store.close()
    _emit(as_json, report.to_json(), _verify_lines(report))
    if not report.ok:
        raise _Failed


@archive.command("gate")
@_config_option
@click.option("--backend", type=click.Choice(BACKENDS), required=True, help="The backend about to delete.")
@click.option("--from", "from_url", required=True, help="That backend's archive: s3://bucket/prefix or file:///dir.")
@click.option("--day", "day_text", default=None, metavar="YYYY-MM-DD", help="One UTC day about to be deleted.")
@click.option("--within", default=None, metavar="AGE",
              help="Every day the backend starts deleting in the next AGE (e.g. 3d), given --days.")
@click.option("--days", "retention_days", type=click.IntRange(1), default=30, show_default=True,
              help="The backend's retention, counted from a day's start.")
@_endpoint_options
@_store_options
@click.option("--selector", "selectors", multiple=True, help="Loki stream selector (as for archive run).")
@click.option("--quick", is_flag=True, help="Check sizes and stored checksums only (no download).")
@click.option("--json", "as_json", is_flag=True, help="Print the verdicts as JSON.")
@_job_command
def archive_gate(config_path: str | None, backend: str, from_url: str, day_text: str | None, within: str | None,
                 retention_days: int, s3_endpoint: str | None, selectors: tuple[str, ...], quick: bool,
                 as_json: bool, **kw: Any) -> None:
    """Exit 0 only if every day about to be deleted has a verified archive holding what the backend has.

    The check `retention enforce` makes before deleting an index, for any other delete: run it before
    a manual delete, or from monitoring ahead of Loki's compactor or CloudWatch's retention.
    """
    from shipper.jobs.gate import may_delete

    if bool(day_text) == bool(within):
        raise click.UsageError("give exactly one of --day or --within")
    days = ([parse_day(day_text)] if day_text else
            days_mod.days_expiring_within(timedelta(days=retention_days), parse_age(within or "0d"), utcnow()))
    store = _open(from_url, region=kw["region"], s3_endpoint=s3_endpoint, profile=kw["profile"])
    exporter = _exporter(backend, _load(config_path), kw, selectors=selectors)
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
    _emit(as_json, {"command": "archive gate", "backend": backend, "archive": from_url, "ok": ok,
                    "days": [{"day": d.isoformat(), "ok": good, "reasons": why} for d, good, why in verdicts]},
          [f"{d} {'may be deleted' if good else 'KEEP'}" + "".join(f"\n    {r}" for r in why)
           for d, good, why in verdicts]
          + [f"archive gate: {'ok' if ok else 'not archived'} ({len(verdicts)} day(s))"])
    if not ok:
        raise _Failed


def _verify_lines(report: VerifyReport) -> list[str]:
    m = report.manifest
    head = f"{report.day} {'OK' if report.ok else 'FAILED'}: {report.url}"
    if m is not None:
        origin = f"export of {m.backend}" if m.route == "export" else "archived at ingest"
        head += (f" ({origin}{f', version {m.version}' if m.version > 1 else ''}, {m.events} events in "
                 f"{len(m.objects)} objects, "
                 f"{report.objects_checked} checked{' deeply' if report.deep else ''})")
    lines = [head]
    lines += [f"  problem: {p}" for p in report.problems]
    lines += [f"  warning: {w}" for w in report.warnings]
    if report.backend_counts is not None:
        lines.append(f"  backend: {sum(report.backend_counts.values())} events")
    return lines


RESTORE_TARGETS = ("loki", "elasticsearch", "file")

#: ``--to`` named the restore target before it meant an archive location everywhere; still accepted.
_deprecated_to_option = click.option(
    "--to", "old_to", default=None, hidden=True, type=click.Choice(RESTORE_TARGETS),
    help="Deprecated spelling of --target (--to is an archive location in the other subcommands).")


def _target(target: str | None, old_to: str | None, default: str | None, *, warn: bool) -> str:
    """The chosen target from ``--target`` or the deprecated ``--to`` (warned about unless ``--json``
    asked for machine output: scripts that capture both streams keep parsing it)."""
    if old_to is not None:
        if target is not None and target != old_to:
            raise click.UsageError(f"--to {old_to} and --target {target} disagree (--to is deprecated: use --target)")
        if warn:
            click.echo("warning: --to is deprecated here; use --target", err=True)
        target = old_to
    if target is None:
        if default is None:
            raise click.UsageError("missing option --target (loki, elasticsearch or file)")
        target = default
    return target


@archive.command("restore")
@_config_option
@click.option("--day", "day_text", required=True, metavar="YYYY-MM-DD", help="The UTC day to restore.")
@click.option("--from", "from_url", required=True, help="Archive root: s3://bucket/prefix or file:///dir.")
@click.option("--target", "target", default=None, type=click.Choice(RESTORE_TARGETS),
              help="Where to replay the day: a Loki, an Elasticsearch or a file.")
@_deprecated_to_option
@click.option("--endpoint", default=None, help="Loki or Elasticsearch URL (default: the config's sink).")
@click.option("--index", default=None,
              help="Elasticsearch index (strftime and {{ field }} allowed); default restored-<original index>.")
@click.option("--tenant", default=None, help="Loki tenant to restore into.")
@click.option("--label", "labels", multiple=True, metavar="NAME=VALUE",
              help='Labels added to restored Loki streams (repeatable); default restored="<day>".')
@click.option("--path", default=None, help="File target path (strftime fields use each event's time).")
@click.option("--sink", "sink_name", default=None, help="Which sink of the config, when it has several.")
@click.option("--region", default=None, help="AWS region of the bucket.")
@click.option("--profile", default=None, help="AWS profile.")
@_store_options
@click.option("--concurrency", type=click.IntRange(1, 16), default=2, show_default=True,
              help="Objects replayed side by side (one stream's objects stay in order).")
@click.option("--data-dir", default="./var/restore", show_default=True, type=click.Path(file_okay=False),
              help="Where events the target refused are written (dead letters).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@_job_command
def archive_restore(config_path: str | None, day_text: str, from_url: str, target: str, endpoint: str | None,
                    index: str | None, tenant: str | None, labels: tuple[str, ...], path: str | None,
                    sink_name: str | None, region: str | None, profile: str | None, s3_endpoint: str | None,
                    concurrency: int, data_dir: str, as_json: bool, old_to: str | None) -> None:
    """Replay an archived day into Loki, Elasticsearch (idempotent by document id) or a file."""
    from shipper.jobs.restore import RestoreTarget, restore_day

    target = _target(target, old_to, None, warn=not as_json)
    day = parse_day(day_text)
    label_map: dict[str, str] | None = None
    if labels:
        label_map = {}
        for item in labels:
            name, sep, value = item.partition("=")
            if not sep or not name:
                raise click.UsageError(f"--label {item!r}: expected NAME=VALUE")
            label_map[name] = value
    base = pick_sink(_load(config_path), target, sink_name) if target != "file" else None
    spec = RestoreTarget(target, endpoint=endpoint, index=index, tenant=tenant, labels=label_map,  # type: ignore[arg-type]
                         path=path, base=base)
    store = _open(from_url, region=region, s3_endpoint=s3_endpoint, profile=profile)
    try:
        result = asyncio.run(restore_day(store, day, spec, data_dir=data_dir, concurrency=concurrency))
    finally:
        store.close()
    doc = result.to_json()
    lines = [f"{day} restored into {target}: {result.events} events from {result.objects} objects in "
             f"{result.seconds:.1f}s, {result.rejected} refused"]
    lines += [f"  refused events: {p}" for p in result.dead_letters if result.rejected]
    _emit(as_json, doc, lines)
    if result.rejected:
        raise _Failed


@archive.command("drill")
@_config_option
@click.option("--day", "day_text", required=True, metavar="YYYY-MM-DD", help="The UTC day to drill.")
@click.option("--from", "from_url", required=True, help="Archive root: s3://bucket/prefix or file:///dir.")
@click.option("--target", "target", type=click.Choice(RESTORE_TARGETS), default=None,
              help="Scratch target: a temporary directory (file, the default), an index ecvi-drill-<nonce>, "
                   'or Loki streams labelled drill="<nonce>".')
@_deprecated_to_option
@click.option("--scratch-url", default=None, help="Elasticsearch or Loki URL of the scratch target "
                                                  "(default: the config's sink).")
@click.option("--scratch-tenant", default=None, help="Loki tenant of the scratch streams.")
@click.option("--backend", type=click.Choice(BACKENDS), default=None,
              help="Also compare with the live backend's counts of the day (while it still holds it).")
@_endpoint_options
@_store_options
@click.option("--selector", "selectors", multiple=True, help="Loki stream selector (as for archive run).")
@click.option("--keep", is_flag=True, help="Keep the scratch target (index, directory) for a look.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@_job_command
def archive_drill(config_path: str | None, day_text: str, from_url: str, target: str | None,
                  scratch_url: str | None, scratch_tenant: str | None, backend: str | None, s3_endpoint: str | None,
                  selectors: tuple[str, ...], keep: bool, as_json: bool, old_to: str | None, **kw: Any) -> None:
    """Restore a day into a scratch target and check it against the manifest (and the live backend).

    Prints one line; exit code 1 when anything differs. Run it monthly on a random archived day.
    """
    import secrets

    from shipper.jobs.drill import drill_day
    from shipper.jobs.restore import RestoreTarget

    target = _target(target, old_to, "file", warn=not as_json)
    day = parse_day(day_text)
    config = _load(config_path)
    nonce = secrets.token_hex(4)
    base = pick_sink(config, target, kw["sink_name"]) if target != "file" else None
    spec = RestoreTarget(target, endpoint=scratch_url, tenant=scratch_tenant, base=base)  # type: ignore[arg-type]
    read_back = None
    scratch_http = None
    if target == "elasticsearch":
        spec.index = f"ecvi-drill-{nonce}"
        scratch_http = es_settings(config, url=scratch_url, sink_name=kw["sink_name"]).http
        index, http = spec.index, scratch_http

        def read_back() -> int:
            http.request("POST", f"/{index}/_refresh", ok=(200, 404))
            resp = http.request("GET", f"/{index}/_count", ok=(200, 404))
            return int(resp.json().get("count", 0)) if resp.status_code == 200 else 0
    elif target == "loki":
        spec.labels = {"drill": nonce}
    store = _open(from_url, region=kw["region"], s3_endpoint=s3_endpoint, profile=kw["profile"])
    exporter = None
    try:
        if backend:
            manifest = read_manifest(store, day)
            exporter = _exporter(backend, config, kw, selectors=selectors,
                                 recorded=manifest.source if manifest else None)
        result = asyncio.run(drill_day(store, day, spec, exporter=exporter, read_back=read_back, keep=keep))
    finally:
        if exporter is not None:
            exporter.close()
        store.close()
        if scratch_http is not None:
            if not keep:  # the index and the template the restore's sink installed for it
                scratch_http.request("DELETE", f"/{spec.index}", ok=(200, 404))
                scratch_http.request("DELETE", f"/_index_template/{spec.index}", ok=(200, 404))
            scratch_http.close()
    if target == "elasticsearch":
        result.target = f"index {spec.index}"
    elif target == "loki":
        result.target = f'loki {{drill="{nonce}"}}'
    _emit(as_json, result.to_json(), [result.line()])
    if not result.ok:
        raise _Failed


@archive.command("lifecycle")
@click.option("--to", "to_url", required=True, help="Archive root: s3://bucket/prefix.")
@click.option("--expire-days", required=True, type=click.IntRange(1), help="Delete archive objects this old.")
@click.option("--region", default=None, help="AWS region of the bucket.")
@click.option("--profile", default=None, help="AWS profile.")
@_store_options
@click.option("--json", "as_json", is_flag=True, help="Print the rule as JSON.")
@_job_command
def archive_lifecycle(to_url: str, expire_days: int, region: str | None, profile: str | None,
                      s3_endpoint: str | None, as_json: bool) -> None:
    """Set the archive bucket's lifecycle rule that expires objects under the prefix."""
    from shipper.archive.storage.s3 import S3Store

    store = _open(to_url, region=region, s3_endpoint=s3_endpoint, profile=profile)
    try:
        if not isinstance(store, S3Store):
            raise click.UsageError("archive lifecycle needs an s3:// archive (a directory has no lifecycle rules)")
        rule = store.set_expiry(expire_days)
    finally:
        store.close()
    _emit(as_json, {"bucket": store.bucket, "rule": rule},
          [f"{store.url}: objects expire {expire_days} days after creation (rule {rule['ID']})"])


# -- retention --------------------------------------------------------------------------------------

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
    options = [
        _config_option,
        click.option("--backend", "backends", multiple=True, type=click.Choice(BACKENDS),
                     help="Only these backends (repeatable); default: each one the config or flags name."),
        click.option("--days", type=click.IntRange(1), default=30, show_default=True, help="Days to keep."),
        _endpoint_options,
        click.option("--loki-config", type=click.Path(dir_okay=False), default=None,
                     help="A Loki config file: apply writes the retention settings into it, check reads it."),
        click.option("--stream-retention", "stream_specs", multiple=True, metavar='SELECTOR=Nd',
                     help="""A Loki per-stream override, e.g. '{level="debug"}=7d' (repeatable)."""),
        click.option("--ilm-margin-days", type=click.IntRange(0), default=7, show_default=True,
                     help="Elasticsearch with ILM: the policy deletes this many days after --days, as a "
                          "backstop; `retention enforce` deletes archived indices at --days."),
        click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON."),
    ]
    return _with_options(fn, options)


def _backends(requested: tuple[str, ...], config: ShipperConfig | None, kw: dict[str, Any],
              loki_config: str | None) -> list[str]:
    if requested:
        return list(requested)
    kinds = {s.type for s in config.sinks.values()} if config else set()
    chosen: list[str] = [b for b in BACKENDS if b in kinds]
    flags = {"loki": kw["loki_url"] or loki_config, "elasticsearch": kw["es_url"], "cloudwatch": kw["cw_prefix"]}
    chosen += [b for b in BACKENDS if flags[b] and b not in chosen]
    if not chosen:
        raise click.UsageError("no backend: pass --config, --backend, or an endpoint flag")
    return chosen


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
            _emit(True, doc | {"ok": False, "error": error, "findings": [f.to_json() for f in findings],
                               "unreachable": findings.unreachable}, [])
        raise
    ok = all(f.ok for f in findings) and not findings.unreachable
    drift = not all(f.ok for f in findings)
    verdict = "backend unreachable" if findings.unreachable else "drift found" if drift else "no drift"
    _emit(as_json, doc | {"ok": ok, "findings": [f.to_json() for f in findings], "unreachable": findings.unreachable},
          [str(f) for f in findings] + [f"UNREACHABLE {u['backend']}: {u['error']}" for u in findings.unreachable]
          + [f"{command}: {verdict}"])
    if findings.unreachable:
        raise _Unreachable
    if drift:
        raise _Failed


@retention.command("apply")
@_retention_options
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
@_job_command
def retention_apply(config_path: str | None, backends: tuple[str, ...], days: int, loki_config: str | None,
                    stream_specs: tuple[str, ...], as_json: bool, dry_run: bool, **kw: Any) -> None:
    """Install the retention of --days on each backend.

    Loki: writes compactor/limits settings into --loki-config (or prints them; restart Loki after),
    and reports drift of the running Loki's /config when its URL is known.
    Elasticsearch: ILM policy + index template (without ILM: the template; use `enforce`).
    CloudWatch Logs: PutRetentionPolicy on every group under the prefix.
    """
    config = _load(config_path)
    streams = [loki_retention.StreamRetention.parse(s) for s in stream_specs]
    with _findings_output("retention apply", as_json, days) as findings:
        for backend in _backends(backends, config, kw, loki_config):
            with findings.asking(backend):
                _apply_backend(backend, findings, config, kw, days, streams, loki_config, dry_run, as_json)


def _apply_backend(backend: str, findings: list[Finding], config: ShipperConfig | None, kw: dict[str, Any], days: int,
                   streams: list[loki_retention.StreamRetention], loki_config: str | None, dry_run: bool,
                   as_json: bool) -> None:
    if backend == "loki":
        findings += _apply_loki(days, streams, loki_config, dry_run, as_json)
        if loki_config is None and (kw["loki_url"] or pick_sink(config, "loki", kw["sink_name"])):
            # Loki takes retention from its config file only: report what the running one uses.
            findings += _check_running_loki(config, kw, days, streams)
    elif backend == "elasticsearch":
        es = es_settings(config, url=kw["es_url"], index=kw["index"], sink_name=kw["sink_name"])
        try:
            findings += es_retention.apply(es.http, es.target, days, margin_days=kw["ilm_margin_days"],
                                           dry_run=dry_run)
        finally:
            es.http.close()
    else:
        cw = cloudwatch_settings(config, prefix=kw["cw_prefix"], region=kw["region"],
                                 endpoint=kw["aws_endpoint"], profile=kw["profile"], sink_name=kw["sink_name"])
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
    path = Path(loki_config)
    current = _read_loki_config(path)
    before = loki_retention.check_config(current, days, streams, str(path))
    merged = loki_retention.merge_settings(current, settings)
    if merged != current and not dry_run:
        backup = path.with_name(path.name + ".bak")
        backup.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
        path.write_text(yaml.safe_dump(merged, sort_keys=False), encoding="utf-8")
    for f in before:
        if not f.ok:
            f.ok = True
            f.action = "would set" if dry_run else "set (restart Loki)"
        else:
            f.action = "unchanged"
    return before


def _read_loki_config(path: Path) -> dict[str, Any]:
    """The Loki config at ``path``; ``ValueError`` (one line, exit 2) when the file cannot be read."""
    try:
        current = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ValueError(f"--loki-config: cannot read {path}: {exc.strerror}") from None
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"--loki-config: {path} is not UTF-8 YAML ({type(exc).__name__})") from None
    if not isinstance(current, dict):
        raise JobError(f"{path} is not a YAML mapping")
    return current


@retention.command("check")
@_retention_options
@_job_command
def retention_check(config_path: str | None, backends: tuple[str, ...], days: int, loki_config: str | None,
                    stream_specs: tuple[str, ...], as_json: bool, **kw: Any) -> None:
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
    config = _load(config_path)
    streams = [loki_retention.StreamRetention.parse(s) for s in stream_specs]
    with _findings_output("retention check", as_json, days) as findings:
        for backend in _backends(backends, config, kw, loki_config):
            with findings.asking(backend):
                _check_backend(backend, findings, config, kw, days, streams, loki_config)


def _check_backend(backend: str, findings: list[Finding], config: ShipperConfig | None, kw: dict[str, Any], days: int,
                   streams: list[loki_retention.StreamRetention], loki_config: str | None) -> None:
    if backend == "loki":
        if loki_config:
            current = _read_loki_config(Path(loki_config))
            findings += loki_retention.check_config(current, days, streams, loki_config)
        if kw["loki_url"] or pick_sink(config, "loki", kw["sink_name"]) is not None or not loki_config:
            findings += _check_running_loki(config, kw, days, streams)
    elif backend == "elasticsearch":
        es = es_settings(config, url=kw["es_url"], index=kw["index"], sink_name=kw["sink_name"])
        try:
            findings += es_retention.check(es.http, es.target, days, now=utcnow(),
                                           margin_days=kw["ilm_margin_days"])
        finally:
            es.http.close()
    else:
        cw = cloudwatch_settings(config, prefix=kw["cw_prefix"], region=kw["region"],
                                 endpoint=kw["aws_endpoint"], profile=kw["profile"], sink_name=kw["sink_name"])
        findings += cw_retention.check(cw.client, cw.prefix, days)


@retention.command("enforce")
@_config_option
@click.option("--archive", "archive_url", required=True,
              help="Where the days of these indices are archived (s3://bucket/prefix or file:///dir).")
@click.option("--days", type=click.IntRange(1), default=30, show_default=True, help="Days to keep.")
@click.option("--sink", "sink_name", default=None, help="Which elasticsearch sink of the config.")
@click.option("--es-url", default=None, help="Elasticsearch URL (overrides the config).")
@click.option("--index", default=None, help="Daily index name with strftime fields, e.g. ecvi-logs-%Y.%m.%d.")
@click.option("--region", default=None, help="AWS region of the bucket.")
@click.option("--profile", default=None, help="AWS profile.")
@_store_options
@click.option("--dry-run", is_flag=True, help="Show what would be deleted; delete nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@_job_command
def retention_enforce(config_path: str | None, archive_url: str, days: int, sink_name: str | None,
                      es_url: str | None, index: str | None, region: str | None, profile: str | None,
                      s3_endpoint: str | None, dry_run: bool, as_json: bool) -> None:
    """Delete Elasticsearch daily indices older than --days, only where the day's archive verifies.

    For clusters without ILM. An index is deleted when its day has a manifest, the deep verify
    passes, and the archive holds all of the index's documents; otherwise it is kept and reported.
    """
    es = es_settings(_load(config_path), url=es_url, index=index, sink_name=sink_name)
    store = _open(archive_url, region=region, s3_endpoint=s3_endpoint, profile=profile)
    try:
        with _findings_output("retention enforce", as_json, days) as findings, findings.asking("elasticsearch"):
            findings += es_retention.enforce(es.http, es.target, days, store, now=utcnow(), dry_run=dry_run)
    finally:
        es.http.close()
        store.close()


COMMANDS = [retention, archive]
