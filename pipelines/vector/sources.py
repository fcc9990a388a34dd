"""Shipper sources as Vector sources, one function per source type, dispatched by :data:`SOURCE_RENDERERS`."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shipper.sources.file.config import FileSourceConfig
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
    """A ``file`` source, or ``kubernetes_logs`` for the kubelet's logs when the options ask for it."""
    kubelet = src.format in ("cri", "docker") and all(p.startswith(_KUBELET_DIRS) for p in src.include)
    if r.opt.kubernetes_logs and kubelet:
        _kubernetes_logs(r, name, src)
        return
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
    if src.format == "text" or src.multiline is not None:
        ml = src.multiline
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
    if src.format == "cri":
        r.note(f"sources.{name}: partial CRI lines (tag P) are not reassembled by the file source "
               "(use --kubernetes-logs for auto_partial_merge)")
    r.note(f"sources.{name}: read_chunk_bytes, poll_interval_secs, batch_events have no Vector equivalent")
    r.parse(name, "file", src.format, kubernetes_metadata=src.kubernetes_metadata)


def _kubernetes_logs(r: Renderer, name: str, src: FileSourceConfig) -> None:
    r.sources[name] = {
        "type": "kubernetes_logs",
        "self_node_name": "${VECTOR_SELF_NODE_NAME}",
        "include_paths_glob_patterns": [pods_glob(p) for p in src.include],
        "read_from": src.read_from,
        "max_line_bytes": src.max_line_bytes,
        "glob_minimum_cooldown_ms": int(src.glob_interval_secs * 1000),
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
    r.parse(name, "kubernetes_logs", src.format, kubernetes_metadata=True)


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
