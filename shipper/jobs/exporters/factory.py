"""Build a backend's exporter from explicit endpoints, then the config's sink, then what an archive recorded."""

from __future__ import annotations

from typing import Any

from shipper.config import ShipperConfig
from shipper.jobs.endpoints import cloudwatch_settings, es_settings, loki_settings, pick_sink
from shipper.jobs.exporters.base import Exporter


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
        from shipper.jobs.exporters.loki import MAX_LIMIT, LokiExporter

        ls = loki_settings(config, url=loki_url or (None if has_sink else rec.get("endpoint")),
                           tenant=tenant or rec.get("tenant"),
                           selectors=selectors or tuple(rec.get("selectors") or ()), sink_name=sink_name)
        size = page_size or MAX_LIMIT
        return LokiExporter(ls.http, selectors=ls.selectors, tenant=ls.tenant, page_size=size,
                            max_page_size=max(size, MAX_LIMIT))
    if backend == "elasticsearch":
        from shipper.jobs.exporters.elasticsearch import PAGE_SIZE, ElasticsearchExporter

        es = es_settings(config, url=es_url or (None if has_sink else rec.get("endpoint")), index=index,
                         sink_name=sink_name)
        pattern = rec["pattern"] if rec.get("pattern") and not index else es.sink.index_pattern
        return ElasticsearchExporter(es.http, pattern=pattern, page_size=page_size or PAGE_SIZE)
    from shipper.jobs.exporters.cloudwatch import CloudWatchExporter

    cw = cloudwatch_settings(config, prefix=cw_prefix or rec.get("group_prefix"),
                             region=region or rec.get("region"), endpoint=aws_endpoint,
                             profile=profile, sink_name=sink_name)
    return CloudWatchExporter(cw.client, prefix=cw.prefix, region=cw.region)
