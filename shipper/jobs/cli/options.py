"""The jobs commands' shared click options, and the typed objects they are read into.

Endpoint flags arrive as one :class:`EndpointOptions` (parameter ``endpoints``) instead of loose
keyword arguments, so a command reads ``endpoints.loki_url`` and mypy checks it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import date, timedelta
from typing import Any, TypeVar, cast

import click

from shipper.archive import days as days_mod
from shipper.archive.days import parse_age, parse_day
from shipper.archive.storage.base import LockSettings, ObjectStore
from shipper.archive.storage.url import open_store
from shipper.config import ShipperConfig, load_config
from shipper.jobs import endpoints as endpoints_mod
from shipper.jobs.exporters.base import Exporter

F = TypeVar("F", bound=Callable[..., Any])
BACKENDS = ("loki", "elasticsearch", "cloudwatch")


@dataclass(frozen=True)
class EndpointOptions:
    """Where the backends are, from the flags; ``None`` falls back to the config's sink."""

    sink_name: str | None = None
    loki_url: str | None = None
    tenant: str | None = None
    es_url: str | None = None
    index: str | None = None
    cw_prefix: str | None = None
    region: str | None = None
    aws_endpoint: str | None = None
    profile: str | None = None

    def exporter(self, backend: str, config: ShipperConfig | None, *, selectors: tuple[str, ...] = (),
                 page_size: int | None = None, recorded: dict[str, Any] | None = None) -> Exporter:
        """The exporter of ``backend`` from these endpoints, then the config (see ``open_exporter``)."""
        return endpoints_mod.open_exporter(
            backend, config, sink_name=self.sink_name, loki_url=self.loki_url, tenant=self.tenant,
            es_url=self.es_url, index=self.index, cw_prefix=self.cw_prefix, region=self.region,
            aws_endpoint=self.aws_endpoint, profile=self.profile, selectors=selectors, page_size=page_size,
            recorded=recorded)


_ENDPOINT_FIELDS = tuple(f.name for f in fields(EndpointOptions))


def load(config_path: str | None) -> ShipperConfig | None:
    """The shipper config at ``config_path``, or ``None`` when no ``--config`` was given."""
    return load_config(config_path) if config_path else None


def config_option(fn: F) -> F:
    """``--config``: the shipper config the endpoints, auth and TLS come from."""
    return click.option("--config", "-c", "config_path", type=click.Path(dir_okay=False, exists=True),
                        help="Shipper config (YAML): backend endpoints, auth and TLS come from its sinks.")(fn)


def with_options(fn: F, options: Sequence[Callable[[Any], Any]]) -> F:
    """Apply click options in the order they are listed (as stacked decorators would)."""
    for option in reversed(options):
        fn = option(fn)
    return fn


def endpoint_options(fn: F) -> F:
    """The endpoint flags, handed to the command as one ``endpoints: EndpointOptions``."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        endpoints = EndpointOptions(**{name: kwargs.pop(name) for name in _ENDPOINT_FIELDS})
        return fn(*args, endpoints=endpoints, **kwargs)

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
    return with_options(cast(F, wrapper), options)


def store_options(fn: F) -> F:
    """``--s3-endpoint`` for the archive store."""
    options = [
        click.option("--s3-endpoint", default=None, help="S3 endpoint override (MinIO, tests)."),
    ]
    return with_options(fn, options)


def bucket_options(fn: F) -> F:
    """``--region``, ``--profile`` and ``--s3-endpoint`` of the archive bucket."""
    options = [
        click.option("--region", default=None, help="AWS region of the bucket."),
        click.option("--profile", default=None, help="AWS profile."),
    ]
    return with_options(store_options(fn), options)


def days_options(fn: F) -> F:
    """``--day`` / ``--older-than`` with ``--lookback``: which UTC days a command works on."""
    options = [
        click.option("--day", "day_text", default=None, metavar="YYYY-MM-DD", help="One UTC day."),
        click.option("--older-than", "older_than", default=None, metavar="AGE",
                     help="Every day whose start is at least AGE ago (e.g. 29d), over --lookback days."),
        click.option("--lookback", default=7, show_default=True, type=click.IntRange(1, 366),
                     help="With --older-than: how many days back to look (catches up missed runs)."),
    ]
    return with_options(fn, options)


def selected_days(day_text: str | None, older_than: str | None, lookback: int, settled: str | None = None,
                  retention_days: int = 30, allow_settled: bool = False) -> list[date]:
    """The days chosen by exactly one of ``--day``, ``--older-than`` or (where allowed) ``--settled``."""
    if sum(1 for v in (day_text, older_than, settled) if v) != 1:
        raise click.UsageError("give exactly one of --day, --older-than" + (" or --settled" if allow_settled else ""))
    if day_text:
        return [parse_day(day_text)]
    if settled:
        return days_mod.settled_days(parse_age(settled), days_mod.utcnow(), timedelta(days=retention_days))
    assert older_than is not None
    return days_mod.days_older_than(parse_age(older_than), days_mod.utcnow(), lookback)


def open_archive(url: str, *, region: str | None, s3_endpoint: str | None, profile: str | None,
                 lock: LockSettings | None = None) -> ObjectStore:
    """The archive store at ``url`` (s3:// or file://)."""
    return open_store(url, lock=lock, region=region, endpoint=s3_endpoint, profile=profile)
