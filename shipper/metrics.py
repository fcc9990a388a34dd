"""Prometheus metrics the shipper exports; every component records through these objects."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

_SIZE_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
_BYTES_BUCKETS = tuple(2**i for i in range(10, 24, 2))

EVENTS_RECEIVED = Counter(
    "ecvi_shipper_events_received", "Events read or accepted by a source.", ["source"], registry=REGISTRY
)
BYTES_RECEIVED = Counter(
    "ecvi_shipper_bytes_received", "Payload bytes read or accepted by a source.", ["source"],
    registry=REGISTRY,
)
INPUT_ERRORS = Counter(
    "ecvi_shipper_input_errors",
    "Malformed input counted and skipped by a source (bad line, bad frame, bad UTF-8, truncated).",
    ["source", "reason"], registry=REGISTRY,
)
EVENTS_SENT = Counter(
    "ecvi_shipper_events_sent", "Events the backend accepted.", ["sink"], registry=REGISTRY
)
BYTES_SENT = Counter(
    "ecvi_shipper_bytes_sent", "Request body bytes the backend accepted.", ["sink"], registry=REGISTRY
)
EVENTS_FAILED = Counter(
    "ecvi_shipper_events_failed",
    "Events a sink gave up on and wrote to its dead-letter file.", ["sink", "reason"], registry=REGISTRY,
)
EVENTS_DROPPED = Counter(
    "ecvi_shipper_events_dropped", "Events dropped on purpose (drop_newest buffer, filters).",
    ["component", "reason"], registry=REGISTRY,
)
RETRIES = Counter(
    "ecvi_shipper_retries", "Requests retried after a transient error.", ["sink", "reason"],
    registry=REGISTRY,
)
BATCH_EVENTS = Histogram(
    "ecvi_shipper_batch_events", "Events per request a sink sends.", ["sink"], buckets=_SIZE_BUCKETS,
    registry=REGISTRY,
)
BATCH_BYTES = Histogram(
    "ecvi_shipper_batch_bytes", "Request body bytes per request.", ["sink"], buckets=_BYTES_BUCKETS,
    registry=REGISTRY,
)
REQUEST_DURATION = Histogram(
    "ecvi_shipper_request_duration_seconds", "Time a sink's request to its backend took.",
    ["sink", "outcome"], registry=REGISTRY,
)
LAST_SUCCESS = Gauge(
    "ecvi_shipper_last_success_timestamp_seconds", "Unix time of the sink's last accepted request.",
    ["sink"], registry=REGISTRY,
)
BUFFER_BYTES = Gauge(
    "ecvi_shipper_buffer_bytes", "Bytes in a sink's disk buffer not yet delivered.", ["sink"],
    registry=REGISTRY,
)
BUFFER_EVENTS = Gauge(
    "ecvi_shipper_buffer_events", "Events in a sink's disk buffer not yet delivered.", ["sink"],
    registry=REGISTRY,
)
BUFFER_MAX_BYTES = Gauge(
    "ecvi_shipper_buffer_max_bytes", "Configured capacity of a sink's disk buffer.", ["sink"],
    registry=REGISTRY,
)
BUFFER_BLOCKED = Gauge(
    "ecvi_shipper_buffer_blocked", "1 while a full buffer is holding its sources back.", ["sink"],
    registry=REGISTRY,
)
BUFFER_DISK_FULL = Counter(
    "ecvi_shipper_buffer_disk_full", "Times a buffer write found no space left on its disk.", ["sink"],
    registry=REGISTRY,
)
BUFFER_CORRUPT = Counter(
    "ecvi_shipper_buffer_corrupt_records", "Torn or corrupt buffer records skipped on read.", ["sink"],
    registry=REGISTRY,
)
FILE_LAG_BYTES = Gauge(
    "ecvi_shipper_file_lag_bytes", "Bytes written to watched files not yet read.", ["source"],
    registry=REGISTRY,
)
FILES_WATCHED = Gauge(
    "ecvi_shipper_files_watched", "Files a file source is tailing.", ["source"], registry=REGISTRY
)
SINK_UP = Gauge(
    "ecvi_shipper_sink_healthy", "1 when the sink's last healthcheck or request succeeded.", ["sink"],
    registry=REGISTRY,
)
FORWARD_CONNECTIONS = Gauge(
    "ecvi_shipper_forward_connections", "Open Fluent forward connections.", ["source"], registry=REGISTRY
)
DUPLICATES_AVOIDED = Counter(
    "ecvi_shipper_duplicates_avoided",
    "Resent events the backend already had (e.g. Elasticsearch 409 on a deterministic id).", ["sink"],
    registry=REGISTRY,
)
EVENTS_TRUNCATED = Counter(
    "ecvi_shipper_events_truncated",
    "Events a sink shortened to fit the backend's maximum event size.", ["sink"], registry=REGISTRY,
)
LABEL_OVERFLOW = Counter(
    "ecvi_shipper_label_overflow",
    "Label values a sink's cardinality guard replaced with __overflow__.", ["sink", "label"], registry=REGISTRY,
)
COMPONENT_UP = Gauge(
    "ecvi_shipper_component_up",
    "1 while a source, sink worker pool or the API runs; 0 while it is down or being restarted.",
    ["component"], registry=REGISTRY,
)
COMPONENT_RESTARTS = Counter(
    "ecvi_shipper_component_restarts",
    "Times a supervisor restarted a source or sink task that had died.", ["component"], registry=REGISTRY,
)
CONFIG_RELOADS = Counter(
    "ecvi_shipper_config_reloads",
    "SIGHUP reloads by outcome (applied, invalid, start_failed, unchanged).", ["outcome"], registry=REGISTRY,
)
EVENTS_REPAIRED = Counter(
    "ecvi_shipper_events_repaired",
    "Events a component changed so they can be delivered (time out of range, too deeply nested, ...).",
    ["component", "reason"], registry=REGISTRY,
)
FILES_SKIPPED = Counter(
    "ecvi_shipper_files_skipped",
    "Paths matching a file source's include that are not read (directory, FIFO, device, loop).",
    ["source", "reason"], registry=REGISTRY,
)
CONNECTIONS_REFUSED = Counter(
    "ecvi_shipper_connections_refused",
    "Connections a network source refused or closed (auth failed, handshake timeout, idle, per-peer cap).",
    ["source", "reason"], registry=REGISTRY,
)
INDEX_OVERFLOW = Counter(
    "ecvi_shipper_index_overflow",
    "Events a sink's name guard sent to its overflow index/group/stream (too many distinct names).",
    ["sink"], registry=REGISTRY,
)
KUBE_CACHE_OBJECTS = Gauge(
    "ecvi_shipper_kube_cache_objects",
    "Objects in the Kubernetes metadata cache (pods on this node, namespaces), deleted ones in their grace included.",
    ["kind"], registry=REGISTRY,
)
KUBE_WATCH_RESTARTS = Counter(
    "ecvi_shipper_kube_watch_restarts",
    "Times a Kubernetes watch was started again (gone: re-listed after 410; error: API trouble, backoff; "
    "timeout: the server ended it; relist: re-listed for objects refused while the cache was full).",
    ["kind", "reason"], registry=REGISTRY,
)
KUBE_API_UP = Gauge(
    "ecvi_shipper_kube_api_up",
    "1 while every Kubernetes list/watch of the metadata cache works; 0 while the cache serves what it last knew.",
    registry=REGISTRY,
)
KUBE_OBJECTS_REFUSED = Counter(
    "ecvi_shipper_kube_objects_refused",
    "Kubernetes API objects or watch lines not cached (malformed: bad JSON or fields; over_limit: max_pods reached).",
    ["kind", "reason"], registry=REGISTRY,
)
KUBE_ENRICHMENT_MISSING = Counter(
    "ecvi_shipper_kube_enrichment_missing",
    "Events of kubelet log files shipped without Kubernetes API metadata (API down, not synced, pod unknown).",
    ["source"], registry=REGISTRY,
)
