"""Shipper sinks as Vector sinks, one function per sink type, dispatched by :data:`SINK_RENDERERS`.

A sink type with no faithful Vector equivalent is listed in :data:`NOT_RENDERED` with the reason,
which the rendering writes as a note instead of a sink.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipelines import vrl
from shipper.sinks._common.config import SinkConfigBase
from shipper.sinks.cloudwatch.config import CloudWatchSinkConfig
from shipper.sinks.elasticsearch.config import ElasticsearchSinkConfig
from shipper.sinks.file.config import FileSinkConfig
from shipper.sinks.loki.config import LokiSinkConfig
from shipper.sinks.loki.encoder import metadata_name
from shipper.sinks.s3.config import S3SinkConfig

if TYPE_CHECKING:
    from pipelines.vector.render import Renderer

#: Vector's smallest disk buffer: 256 MiB plus its ledger.
MIN_DISK_BUFFER_BYTES = 268_435_488


@dataclass
class SinkRendering:
    """One Vector sink and what its ``<name>_prepare`` remap must do for it."""

    component: dict[str, Any]
    raw_line: bool = True  # send the original line (else the parsed record)
    templates: list[str] = field(default_factory=list)  # templates whose fields the remap must provide
    es_id: bool = False  # set ``ecvi_id`` (deterministic Elasticsearch ids)


def common(r: Renderer, name: str, sink: SinkConfigBase) -> dict[str, Any]:
    """Batch, request, retry, buffer, acknowledgement and healthcheck options every sink has."""
    retry = sink.request.retry
    request: dict[str, Any] = {
        "concurrency": sink.request.concurrency,
        "timeout_secs": max(1, math.ceil(sink.request.timeout_secs)),
        "retry_initial_backoff_secs": max(1, math.ceil(retry.initial_backoff_secs)),
        "retry_max_duration_secs": max(1, math.ceil(retry.max_backoff_secs)),
        "retry_jitter_mode": "Full",
    }
    if retry.initial_backoff_secs < 1 or sink.request.timeout_secs % 1 or retry.max_backoff_secs % 1:
        r.rounded.append(name)
    if retry.max_attempts is not None:
        request["retry_attempts"] = max(0, retry.max_attempts - 1)
        r.note(f"sinks.{name}.request.retry.max_attempts: Vector drops a request after its retries, "
               "there is no dead-letter file")
    max_size = max(sink.buffer.max_bytes, MIN_DISK_BUFFER_BYTES)
    if max_size != sink.buffer.max_bytes:
        r.raised.append(name)
    if sink.buffer.fsync != "interval" or sink.buffer.segment_bytes != 32 * 1024 * 1024:
        r.note(f"sinks.{name}.buffer.fsync, segment_bytes: Vector's disk buffer syncs on its own schedule")
    return {
        "inputs": [],  # replaced by the sink's own remap
        "batch": {
            "max_events": sink.batch.max_events,
            "max_bytes": sink.batch.max_bytes,
            "timeout_secs": sink.batch.timeout_secs,
        },
        "request": request,
        "buffer": {"type": "disk", "max_size": max_size, "when_full": sink.buffer.when_full},
        "acknowledgements": {"enabled": True},
        "healthcheck": {"enabled": sink.healthcheck},
    }


def render_loki(r: Renderer, name: str, sink: LokiSinkConfig) -> SinkRendering:
    key = ("sinks", name)
    out = {
        "type": "loki",
        **common(r, name, sink),
        "endpoint": r.value((*key, "endpoint"), sink.endpoint),
        "path": sink.path,
        "labels": dict(sink.labels),
        "structured_metadata": {metadata_name(p): "{{ " + p + " }}" for p in sink.structured_metadata},
        "encoding": {"codec": "text"},
        "compression": "snappy" if sink.encoding == "protobuf" else "gzip",
        "out_of_order_action": "accept",
    }
    if sink.tenant_id:
        out["tenant_id"] = r.value((*key, "tenant_id"), sink.tenant_id)
    http_auth(r, out, key, sink)
    r.note(f"sinks.{name}: 400 answers are not split per entry (Vector drops the batch, the shipper "
           "dead-letters only the rejected entries); the cardinality guards have no equivalent")
    r.note(f"sinks.{name}.structured_metadata: an absent field is sent empty instead of left out")
    return SinkRendering(out, templates=list(sink.labels.values()))


def render_elasticsearch(r: Renderer, name: str, sink: ElasticsearchSinkConfig) -> SinkRendering:
    key = ("sinks", name)
    out = {
        "type": "elasticsearch",
        **common(r, name, sink),
        "endpoints": [r.value((*key, "endpoint"), sink.endpoint)],
        "api_version": "auto",
        "mode": "bulk",
        "bulk": {"action": "create", "index": sink.index},
        "id_key": "ecvi_id",
        "request_retry_partial": True,
        "compression": sink.compression,
    }
    if sink.mode == "data_stream":
        r.note(f"sinks.{name}.mode data_stream: written as bulk 'create' into the data stream "
               f"{sink.index!r} (Vector's data_stream mode composes type-dataset-namespace)")
    if sink.install_template:
        r.note(f"sinks.{name}.install_template: Vector installs no index template; install "
               "deploy/elasticsearch/index-template.json and ilm-policy.json first")
    if sink.api_key is not None:
        raw_key = r.value((*key, "api_key"), None)
        if raw_key is None:
            secret = sink.api_key.get_secret_value()
            if ":" in secret:
                secret = base64.b64encode(secret.encode()).decode()
            raw_key = secret
            r.note(f"sinks.{name}.api_key: written in clear into the Vector config; prefer an environment "
                   "variable reference")
        out["request"]["headers"] = {"Authorization": f"ApiKey {raw_key}"}
    http_auth(r, out, key, sink)
    templates = [sink.index] if vrl.template_fields(sink.index) else []
    return SinkRendering(out, raw_line=False, templates=templates, es_id=True)


def render_cloudwatch(r: Renderer, name: str, sink: CloudWatchSinkConfig) -> SinkRendering:
    key = ("sinks", name)
    out = {
        "type": "aws_cloudwatch_logs",
        **common(r, name, sink),
        "region": r.value((*key, "region"), sink.region),
        "group_name": sink.group,
        "stream_name": sink.stream,
        "create_missing_group": sink.create_missing,
        "create_missing_stream": sink.create_missing,
        "encoding": {"codec": "text"},
    }
    if sink.endpoint:
        out["endpoint"] = r.value((*key, "endpoint"), sink.endpoint)
    if sink.retention_days:
        out["retention"] = {"enabled": True, "days": sink.retention_days}
    if sink.profile:
        out["auth"] = {"profile": r.value((*key, "profile"), sink.profile)}
    r.note(f"sinks.{name}.max_event_bytes: Vector does not truncate oversized events")
    return SinkRendering(out, templates=[sink.group, sink.stream])


def render_file(r: Renderer, name: str, sink: FileSinkConfig) -> SinkRendering:
    raw_line = sink.encoding == "raw"
    out = {
        "type": "file",
        **common(r, name, sink),
        "path": sink.path,
        "encoding": {"codec": "text" if raw_line else "json"},
    }
    del out["batch"], out["request"]
    if sink.fsync:
        r.note(f"sinks.{name}.fsync: the Vector file sink has no fsync option")
    # Vector fills the path's fields from the event as it is: the remap adds none for it.
    if r.unconfined([sink.path]):
        out["dangerously_allow_unconfined_template_resolution"] = True
    return SinkRendering(out, raw_line=raw_line)


def http_auth(r: Renderer, out: dict[str, Any], key: tuple[str, ...],
              sink: LokiSinkConfig | ElasticsearchSinkConfig) -> None:
    """Basic or bearer auth and TLS options of the HTTP sinks."""
    if sink.auth is not None:
        a = sink.auth
        auth_key = (*key, "auth")
        if a.strategy == "basic":
            out["auth"] = {
                "strategy": "basic",
                "user": r.value((*auth_key, "user"), a.user or ""),
                "password": r.value((*auth_key, "password"), a.password.get_secret_value() if a.password else ""),
            }
        else:
            out["auth"] = {"strategy": "bearer",
                           "token": r.value((*auth_key, "token"), a.token.get_secret_value() if a.token else "")}
    if sink.tls is not None:
        t = sink.tls
        tls: dict[str, Any] = {"verify_certificate": t.verify, "verify_hostname": t.verify}
        for opt in ("ca_file", "crt_file", "key_file"):
            if getattr(t, opt):
                tls[opt] = getattr(t, opt)
        out["tls"] = tls


SINK_RENDERERS: dict[type[Any], Callable[[Renderer, str, Any], SinkRendering]] = {
    LokiSinkConfig: render_loki,
    ElasticsearchSinkConfig: render_elasticsearch,
    CloudWatchSinkConfig: render_cloudwatch,
    FileSinkConfig: render_file,
}
"""Sink config class -> the function building its Vector sink."""

NOT_RENDERED: dict[type[Any], str] = {
    S3SinkConfig: "Vector's aws_s3 sink cannot write the archive layout `ecvi-logs archive seal`, verify and "
    "restore read (objects named from event ids, per-day manifests); keep the shipper for it, or archive "
    "with `ecvi-logs archive run`",
}
"""Sink config class -> why the rendering leaves it out (written as a note)."""
