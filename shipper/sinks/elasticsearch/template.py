"""The index template (mappings for the ``logging_config`` record schema) and an ILM policy.

Pure builders returning request bodies, so the sink and the retention job install the same thing
with whichever client they hold.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

#: Bump when the template changes in a way that should replace installed copies.
TEMPLATE_VERSION = 2
MANAGED_BY = "ecvi-logs"

_KEYWORD_FIELDS = (
    "level", "logger", "request_id", "user_id", "company_id", "task_id", "trace_id", "span_id",
    "service", "environment", "version",
)
_KUBERNETES_FIELDS = (
    "namespace", "pod_name", "container_name", "container_id", "pod_uid", "node_name", "container_image",
    "owner_kind", "owner_name",
)
# Label and annotation keys such as ``app`` and ``app.kubernetes.io/name`` would be a keyword and an
# object in a dynamic mapping, which Elasticsearch refuses: a flattened field takes any keys as one field.
_KUBERNETES_MAPS = ("pod_labels", "pod_annotations", "namespace_labels")
#: Longer strings are kept in ``_source`` but not indexed as keywords (Lucene's term limit is 32 KB).
IGNORE_ABOVE = 1024


def _keyword() -> dict[str, Any]:
    return {"type": "keyword", "ignore_above": IGNORE_ABOVE}


def _text_with_keyword() -> dict[str, Any]:
    return {"type": "text", "fields": {"keyword": _keyword()}}


def record_mappings() -> dict[str, Any]:
    """Mappings of the record schema: dates, keyword ids, full-text message and stack trace.

    Other strings become keywords (not text + keyword, which doubles the index size of logs), and
    date detection is off so a field that once looked like a date does not reject later values.
    """
    properties: dict[str, Any] = {
        "@timestamp": {"type": "date"},
        "timestamp": {"type": "date"},
        "message": _text_with_keyword(),
        "exception": {
            "properties": {
                "type": _keyword(),
                "message": _text_with_keyword(),
                "stacktrace": {"type": "text"},
            }
        },
        "kubernetes": {"properties": {
            **{name: _keyword() for name in _KUBERNETES_FIELDS},
            **{name: {"type": "flattened", "ignore_above": IGNORE_ABOVE} for name in _KUBERNETES_MAPS},
        }},
    }
    properties.update({name: _keyword() for name in _KEYWORD_FIELDS})
    return {
        "date_detection": False,
        "dynamic_templates": [
            {"strings_as_keyword": {"match_mapping_type": "string", "mapping": _keyword()}},
        ],
        "properties": properties,
    }


def index_template(
    pattern: str | list[str],
    *,
    data_stream: bool = False,
    priority: int = 200,
    ilm_policy: str | None = None,
) -> dict[str, Any]:
    """Body of ``PUT _index_template/<name>`` for indices (or a data stream) matching ``pattern``.

    ``ilm_policy`` names a lifecycle policy for the indices (leave it out on clusters without ILM).
    ``_meta.hash`` fingerprints the body, so an installer can skip an identical template.
    """
    settings: dict[str, Any] = {
        # Past the field limit, new dynamic fields are kept in _source only instead of failing the
        # document: one noisy logger must not dead-letter everyone's logs (Elasticsearch 8.13+).
        "index.mapping.total_fields.ignore_dynamic_beyond_limit": True,
    }
    if ilm_policy:
        settings["index.lifecycle.name"] = ilm_policy
    body: dict[str, Any] = {
        "index_patterns": [pattern] if isinstance(pattern, str) else list(pattern),
        "priority": priority,
        "template": {"settings": settings, "mappings": record_mappings()},
    }
    if data_stream:
        body["data_stream"] = {}
    body["_meta"] = {"managed_by": MANAGED_BY, "version": TEMPLATE_VERSION, "hash": template_hash(body)}
    return body


def template_hash(body: dict[str, Any]) -> str:
    """A fingerprint of a template body (ignoring its ``_meta``)."""
    rest = {k: v for k, v in body.items() if k != "_meta"}
    return hashlib.sha256(orjson.dumps(rest, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def ilm_policy(days: int = 30, *, rollover: bool = False) -> dict[str, Any]:
    """Body of ``PUT _ilm/policy/<name>``: delete indices ``days`` after creation (or rollover).

    With ``rollover`` (data streams) the hot phase rolls the write index over daily or at 50 GB a
    primary shard, and age counts from the rollover. Daily indices need no rollover.
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    phases: dict[str, Any] = {"hot": {"min_age": "0ms", "actions": {}}}
    if rollover:
        phases["hot"]["actions"]["rollover"] = {"max_age": "1d", "max_primary_shard_size": "50gb"}
    phases["delete"] = {"min_age": f"{days}d", "actions": {"delete": {}}}
    return {"policy": {"phases": phases, "_meta": {"managed_by": MANAGED_BY, "retention_days": days}}}
