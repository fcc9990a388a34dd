"""Backend endpoints for the jobs: from the shipper config's sinks, overridden by command-line flags.

:func:`open_exporter` builds a backend's exporter from them; the exporters themselves know nothing
of the config, so they depend on nothing here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipper.config import ShipperConfig
from shipper.errors import JobError
from shipper.jobs.exporters.base import Exporter
from shipper.jobs.exporters.cloudwatch import CloudWatchExporter, build_logs_client
from shipper.jobs.exporters.elasticsearch import PAGE_SIZE, ElasticsearchExporter
from shipper.jobs.exporters.loki import MAX_LIMIT, LokiExporter
from shipper.jobs.http import JobHttp
from shipper.jobs.retention.elasticsearch import EsRetentionTarget
from shipper.sinks.cloudwatch.config import CloudWatchSinkConfig
from shipper.sinks.elasticsearch.config import DEFAULT_INDEX, ElasticsearchSinkConfig
from shipper.sinks.loki.config import LokiSinkConfig

if TYPE_CHECKING:
    from mypy_boto3_logs import CloudWatchLogsClient

#: Streams listed when neither --selector nor a loki sink says which: Loki labels every stream so.
DEFAULT_LOKI_SELECTOR = '{service_name=~".+"}'


def pick_sink(config: ShipperConfig | None, kind: str, name: str | None = None) -> Any:
    """The config's sink of type ``kind`` (the one named ``name`` when several are)."""
    if config is None:
        return None
    found = {n: s for n, s in config.sinks.items() if s.type == kind}
    if name is not None:
        if name in found:
            return found[name]
        if name in config.sinks:
            return None  # named sink of another kind: not for this backend
        raise JobError(f"the config has no sink named {name!r}")
    if len(found) > 1:
        raise JobError(f"the config has several {kind} sinks ({', '.join(sorted(found))}): choose one with --sink")
    return next(iter(found.values()), None)


@dataclass(slots=True)
class LokiSettings:
    http: JobHttp
    tenant: str | None
    selectors: list[str]
    sink: LokiSinkConfig | None


def loki_settings(config: ShipperConfig | None, *, url: str | None, tenant: str | None = None,
                  selectors: tuple[str, ...] = (), sink_name: str | None = None) -> LokiSettings:
    sink: LokiSinkConfig | None = pick_sink(config, "loki", sink_name)
    endpoint = url or (sink.endpoint if sink else None)
    if not endpoint:
        raise JobError("no Loki endpoint: pass --loki-url or a --config with a loki sink")
    tenant = tenant or (sink.tenant_id if sink else None)
    headers = {"X-Scope-OrgID": tenant} if tenant else {}
    http = JobHttp(endpoint, what="Loki", auth=sink.auth if sink else None, tls=sink.tls if sink else None,
                   headers=headers)
    if selectors:
        chosen = list(selectors)
    elif sink is not None:
        # Every stream of the sink has every configured label (a missing field renders "unknown").
        chosen = [f'{{{next(iter(sink.labels))}=~".+"}}']
    else:
        chosen = [DEFAULT_LOKI_SELECTOR]
    return LokiSettings(http, tenant, chosen, sink)


@dataclass(slots=True)
class EsSettings:
    http: JobHttp
    sink: ElasticsearchSinkConfig

    @property
    def target(self) -> EsRetentionTarget:
        s = self.sink
        return EsRetentionTarget(index=s.index, pattern=s.index_pattern, template_name=s.effective_template_name,
                                 priority=s.template_priority, data_stream=s.mode == "data_stream")


def es_settings(config: ShipperConfig | None, *, url: str | None, index: str | None = None,
                sink_name: str | None = None) -> EsSettings:
    sink: ElasticsearchSinkConfig | None = pick_sink(config, "elasticsearch", sink_name)
    endpoint = url or (sink.endpoint if sink else None)
    if not endpoint:
        raise JobError("no Elasticsearch endpoint: pass --es-url or a --config with an elasticsearch sink")
    data: dict[str, Any] = sink.model_dump(exclude_unset=True) if sink else {
        "type": "elasticsearch", "inputs": ["jobs"], "index": DEFAULT_INDEX}
    data["endpoint"] = endpoint
    if index:
        data["index"] = index
        data.pop("template_name", None)
    resolved = ElasticsearchSinkConfig.model_validate(data)
    http = JobHttp(endpoint, what="Elasticsearch", auth=resolved.auth, tls=resolved.tls,
                   headers={"Accept": "application/json", **resolved.auth_headers()})
    return EsSettings(http, resolved)


@dataclass(slots=True)
class CloudWatchSettings:
    client: CloudWatchLogsClient
    prefix: str
    region: str | None


def cloudwatch_settings(config: ShipperConfig | None, *, prefix: str | None, region: str | None = None,
                        endpoint: str | None = None, profile: str | None = None,
                        sink_name: str | None = None) -> CloudWatchSettings:
    sink: CloudWatchSinkConfig | None = pick_sink(config, "cloudwatch", sink_name)
    if prefix is None:
        if sink is None:
            raise JobError("no log group prefix: pass --cw-prefix or a --config with a cloudwatch sink")
        prefix = sink.group.split("{{", 1)[0]
    region = region or (sink.region if sink else None)
    client = build_logs_client(region=region, endpoint=endpoint or (sink.endpoint if sink else None),
                               profile=profile or (sink.profile if sink else None))
    return CloudWatchSettings(client, prefix, region)


def open_exporter(backend: str, config: ShipperConfig | None, *, sink_name: str | None = None,
                  loki_url: str | None = None, tenant: str | None = None, es_url: str | None = None,
                  index: str | None = None, cw_prefix: str | None = None, region: str | None = None,
                  aws_endpoint: str | None = None, profile: str | None = None, selectors: tuple[str, ...] = (),
                  page_size: int | None = None, recorded: dict[str, Any] | None = None) -> Exporter:
    """The exporter of ``backend`` ("loki", "elasticsearch" or "cloudwatch").

    ``recorded`` (a manifest's source) fills in what a check of that archive must reuse: the
    selectors, tenant, index pattern, group prefix, and the endpoint when the config has no sink.
    """
    rec = recorded if recorded and recorded.get("backend") == backend else {}
    has_sink = pick_sink(config, backend, sink_name) is not None
    if backend == "loki":
        ls = loki_settings(config, url=loki_url or (None if has_sink else rec.get("endpoint")),
                           tenant=tenant or rec.get("tenant"),
                           selectors=selectors or tuple(rec.get("selectors") or ()), sink_name=sink_name)
        size = page_size or MAX_LIMIT
        return LokiExporter(ls.http, selectors=ls.selectors, tenant=ls.tenant, page_size=size,
                            max_page_size=max(size, MAX_LIMIT))
    if backend == "elasticsearch":
        es = es_settings(config, url=es_url or (None if has_sink else rec.get("endpoint")), index=index,
                         sink_name=sink_name)
        pattern = rec["pattern"] if rec.get("pattern") and not index else es.sink.index_pattern
        return ElasticsearchExporter(es.http, pattern=pattern, page_size=page_size or PAGE_SIZE)
    cw = cloudwatch_settings(config, prefix=cw_prefix or rec.get("group_prefix"),
                             region=region or rec.get("region"), endpoint=aws_endpoint,
                             profile=profile, sink_name=sink_name)
    return CloudWatchExporter(cw.client, prefix=cw.prefix, region=cw.region)
