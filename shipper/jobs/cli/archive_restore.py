"""``ecvi-logs archive restore`` and ``archive drill``: replay an archived day, for real or into a scratch target."""

from __future__ import annotations

import asyncio

import click

from shipper.archive.days import parse_day
from shipper.jobs.cli.options import (
    BACKENDS,
    EndpointOptions,
    bucket_options,
    config_option,
    endpoint_options,
    load,
    open_archive,
    store_options,
)
from shipper.jobs.cli.output import Failed, emit, job_command
from shipper.jobs.endpoints import es_settings, pick_sink
from shipper.jobs.verify import read_manifest

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


@click.command("restore")
@config_option
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
@bucket_options
@click.option("--concurrency", type=click.IntRange(1, 16), default=2, show_default=True,
              help="Objects replayed side by side (one stream's objects stay in order).")
@click.option("--data-dir", default="./var/restore", show_default=True, type=click.Path(file_okay=False),
              help="Where events the target refused are written (dead letters).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@job_command
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
    base = pick_sink(load(config_path), target, sink_name) if target != "file" else None
    spec = RestoreTarget(target, endpoint=endpoint, index=index, tenant=tenant, labels=label_map,  # type: ignore[arg-type]
                         path=path, base=base)
    store = open_archive(from_url, region=region, s3_endpoint=s3_endpoint, profile=profile)
    try:
        result = asyncio.run(restore_day(store, day, spec, data_dir=data_dir, concurrency=concurrency))
    finally:
        store.close()
    doc = result.to_json()
    lines = [f"{day} restored into {target}: {result.events} events from {result.objects} objects in "
             f"{result.seconds:.1f}s, {result.rejected} refused"]
    lines += [f"  refused events: {p}" for p in result.dead_letters if result.rejected]
    emit(as_json, doc, lines)
    if result.rejected:
        raise Failed


@click.command("drill")
@config_option
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
@endpoint_options
@store_options
@click.option("--selector", "selectors", multiple=True, help="Loki stream selector (as for archive run).")
@click.option("--keep", is_flag=True, help="Keep the scratch target (index, directory) for a look.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@job_command
def archive_drill(config_path: str | None, day_text: str, from_url: str, target: str | None,
                  scratch_url: str | None, scratch_tenant: str | None, backend: str | None, s3_endpoint: str | None,
                  selectors: tuple[str, ...], keep: bool, as_json: bool, old_to: str | None,
                  endpoints: EndpointOptions) -> None:
    """Restore a day into a scratch target and check it against the manifest (and the live backend).

    Prints one line; exit code 1 when anything differs. Run it monthly on a random archived day.
    """
    import secrets

    from shipper.jobs.drill import drill_day
    from shipper.jobs.restore import RestoreTarget

    target = _target(target, old_to, "file", warn=not as_json)
    day = parse_day(day_text)
    config = load(config_path)
    nonce = secrets.token_hex(4)
    base = pick_sink(config, target, endpoints.sink_name) if target != "file" else None
    spec = RestoreTarget(target, endpoint=scratch_url, tenant=scratch_tenant, base=base)  # type: ignore[arg-type]
    read_back = None
    scratch_http = None
    if target == "elasticsearch":
        spec.index = f"ecvi-drill-{nonce}"
        scratch_http = es_settings(config, url=scratch_url, sink_name=endpoints.sink_name).http
        index, http = spec.index, scratch_http

        def read_back() -> int:
            http.request("POST", f"/{index}/_refresh", ok=(200, 404))
            resp = http.request("GET", f"/{index}/_count", ok=(200, 404))
            return int(resp.json().get("count", 0)) if resp.status_code == 200 else 0
    elif target == "loki":
        spec.labels = {"drill": nonce}
    store = open_archive(from_url, region=endpoints.region, s3_endpoint=s3_endpoint, profile=endpoints.profile)
    exporter = None
    try:
        if backend:
            manifest = read_manifest(store, day)
            exporter = endpoints.exporter(backend, config, selectors=selectors,
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
    emit(as_json, result.to_json(), [result.line()])
    if not result.ok:
        raise Failed

