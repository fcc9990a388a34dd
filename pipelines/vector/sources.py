"""Shipper sources as Vector sources, one function per source type, dispatched by :data:`SOURCE_RENDERERS`."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pipelines.vector.multiline import render_grouping
from shipper.sources.file.config import (
    EXCLUDE_ANNOTATION,
    EXCLUDE_CONTAINERS_ANNOTATION,
    FileSourceConfig,
    KubernetesApiConfig,
)
from shipper.sources.forward.config import ForwardSourceConfig

if TYPE_CHECKING:
    from pipelines.vector.render import Renderer

_KUBELET_DIRS = ("/var/log/containers/", "/var/log/pods/")


def render_forward(r: Renderer, name: str, src: ForwardSourceConfig) -> None:
    """A ``fluent`` source (no handshake, fewer limits)."""
    r.sources[name] = {
        "type": "fluent",
        "address": r.value(("sources", name, "address"), src.address),
        "connection_limit": src.max_connections,
    }
    if src.shared_key:
        r.note(f"sources.{name}.shared_key: Vector's fluent source has no HELO/PING/PONG handshake")
    r.note(f"sources.{name}.max_frame_bytes, max_frame_values, idle_timeout_secs, handshake_timeout_secs, "
           "max_connections_per_peer: no fluent source equivalent")
    r.parse(name, "fluent", "forward", kubernetes_metadata=False)


def render_file(r: Renderer, name: str, src: FileSourceConfig) -> None:
    """A ``file`` source, or ``kubernetes_logs`` for the kubelet's logs when the options ask for it
    or the source reads the Kubernetes API itself (``kubernetes_api``)."""
    kubelet = src.format in ("cri", "docker") and all(p.startswith(_KUBELET_DIRS) for p in src.include)
    if (r.opt.kubernetes_logs or src.kubernetes_api is not None) and kubelet:
        _kubernetes_logs(r, name, src)
        return
    if src.kubernetes_api is not None:
        r.note(f"sources.{name}.kubernetes_api: only kubelet log paths (/var/log/containers, /var/log/pods) "
               "in cri or docker format render as kubernetes_logs; this source gets path metadata only")
    r.sources[name] = {
        "type": "file",
        "include": list(src.include),
        "exclude": list(src.exclude),
        "read_from": src.read_from,
        "max_line_bytes": src.max_line_bytes,
        "glob_minimum_cooldown_ms": int(src.glob_interval_secs * 1000),
        "rotate_wait_secs": max(1, math.ceil(src.rotate_wait_secs)),
        "file_key": "file",
        "offset_key": "offset",
    }
    ml = src.multiline
    if src.format == "text":
        # A text line is the message itself: the file source groups it as the shipper does.
        r.sources[name]["multiline"] = {
            # Default: Python tracebacks (indented lines, "Traceback", "During handling...",
            # and the final "SomeError: ..." line continue the event before them).
            "start_pattern": ml.start_pattern if ml and ml.start_pattern else r"^[^\s]",
            "condition_pattern": ml.start_pattern if ml and ml.start_pattern else (
                r"^(?:[\s]|Traceback |During handling |The above exception |[\w.]+(?:Error|Exception)\b)"),
            "mode": "halt_before" if ml and ml.start_pattern else "continue_through",
            "timeout_ms": ml.timeout_ms if ml else 1000,
        }
        r.note(f"sources.{name}.multiline.max_lines: no file source equivalent")
    elif src.format == "json":
        if ml is not None:
            r.note(f"sources.{name}.multiline: not rendered; the shipper groups no json lines either")
    else:
        partial = {"cri": "partial CRI lines (tag P)", "docker": "partial docker lines (a log with no newline)"}
        note = f"sources.{name}: {partial[src.format]} are not reassembled by the file source"
        if ml is not None:
            note += " (with multiline, each piece is grouped as a line of its own)"
        r.note(note + "; use --kubernetes-logs for auto_partial_merge")
    r.note(f"sources.{name}: read_chunk_bytes, poll_interval_secs, batch_events have no Vector equivalent")
    group = ml if src.format in ("cri", "docker") else None
    r.parse(name, "file", src.format, kubernetes_metadata=src.kubernetes_metadata, multiline=group is not None)
    if group is not None:
        render_grouping(r, name, group)


def _kubernetes_logs(r: Renderer, name: str, src: FileSourceConfig) -> None:
    api = src.kubernetes_api
    r.sources[name] = {
        "type": "kubernetes_logs",
        "self_node_name": "${VECTOR_SELF_NODE_NAME}" if api is None else
        r.value(("sources", name, "kubernetes_api", "node_name"), api.node_name),
        "include_paths_glob_patterns": [pods_glob(p) for p in src.include],
        "read_from": src.read_from,
        "max_line_bytes": src.max_line_bytes,
        "glob_minimum_cooldown_ms": int(src.glob_interval_secs * 1000),
        "auto_partial_merge": True,  # the default, relied on: grouping sees whole lines
    }
    excludes = [g for g in (pods_glob(p, exclude=True) for p in src.exclude) if g]
    if excludes:
        r.sources[name]["exclude_paths_glob_patterns"] = excludes
    if len(excludes) < len(src.exclude):
        r.note(f"sources.{name}.exclude: only /var/log/containers/<pod>_<ns>_<container> globs map to "
               "kubernetes_logs paths")
    r.env_refs = True
    r.note(f"sources.{name}: kubernetes_logs reads metadata from the Kubernetes API (needs RBAC) and "
           "has no end-to-end acknowledgements (best-effort delivery)")
    if api is not None:
        _kubernetes_api(r, name, api)
    r.parse(name, "kubernetes_logs", src.format, kubernetes_metadata=True, multiline=src.multiline is not None)
    if api is not None:
        _exclusion_filter(r, name)
    if src.multiline is not None:
        render_grouping(r, name, src.multiline)


def _kubernetes_api(r: Renderer, name: str, api: KubernetesApiConfig) -> None:
    """The ``kubernetes_api`` options kubernetes_logs has, and notes for those it has not."""
    src = r.sources[name]
    if api.kubeconfig:
        src["kube_config_file"] = r.value(("sources", name, "kubernetes_api", "kubeconfig"), api.kubeconfig)
    src["delay_deletion_ms"] = int(api.delete_grace_secs * 1000)
    # Vector's selectors match labels only: a namespace is left out when it carries the exclusion
    # as a label; pods and containers are dropped by their annotations in the filter after the parse.
    src["extra_namespace_label_selector"] = f"{EXCLUDE_ANNOTATION}!=true"
    r.note(f"sources.{name}.kubernetes_api: a namespace is excluded by the label {EXCLUDE_ANNOTATION}=true "
           "(Vector cannot select namespaces by annotation); pods and containers by their annotations, "
           "after their lines are read")
    if list(api.pod_annotations) != ["*"] or api.exclude_pod_annotations:
        r.note(f"sources.{name}.kubernetes_api.pod_annotations, exclude_pod_annotations: kubernetes_logs "
               "attaches every pod annotation")
    r.note(f"sources.{name}.kubernetes_api.max_pods: no kubernetes_logs equivalent")


def _exclusion_filter(r: Renderer, name: str) -> None:
    """Drop events of pods annotated ``ecvi-logs.io/exclude: "true"`` and of containers their pod's
    ``ecvi-logs.io/exclude-containers`` lists, after the parse step (which names the fields as the shipper)."""
    parsed = r.outputs[name]  # the parse step's one output
    out = f"{name}_exclude"
    annotations = ".kubernetes.pod_annotations"
    listed = f"split(string({annotations}.{json.dumps(EXCLUDE_CONTAINERS_ANNOTATION)}) ?? \"\", \",\")"
    r.transforms[out] = {
        "type": "filter",
        "inputs": parsed,
        "condition": {"type": "vrl", "source": (
            f"downcase(strip_whitespace(string({annotations}.{json.dumps(EXCLUDE_ANNOTATION)}) ?? \"\")) != \"true\""
            f" && !includes(map_values({listed}) -> |c| {{ strip_whitespace(c) }}, "
            "string(.kubernetes.container_name) ?? null)"
        )},
    }
    r.outputs[name] = [out]


def pods_glob(pattern: str, exclude: bool = False) -> str | None:
    """A /var/log/containers glob as a kubernetes_logs glob over /var/log/pods paths."""
    if pattern.startswith("/var/log/pods/"):
        return pattern
    name = pattern.removeprefix("/var/log/containers/").removesuffix(".log")
    parts = name.split("_")
    if len(parts) == 3:
        pod, ns, container = parts
        container = container.rsplit("-", 1)[0] if "-" in container else container
        return f"/var/log/pods/{ns}_{pod}_*/{container or '*'}/*.log"
    if exclude:
        return None
    return "/var/log/pods/**/*.log"


SOURCE_RENDERERS: dict[type[Any], Callable[[Renderer, str, Any], None]] = {
    FileSourceConfig: render_file,
    ForwardSourceConfig: render_forward,
}
"""Source config class -> the function adding its Vector source (and parse step) to the renderer."""
