"""Checks of a valid config against what it needs to start: free listen addresses, a usable data_dir;
and the graph of a config whose schema failed, so both kinds of problem are reported in one pass."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from shipper.config.model import ShipperConfig
from shipper.sources.forward.config import parse_address

_ANY_V4 = "0.0.0.0"
_ANY_V6 = "::"
_KERNEL_FS = (Path("/proc"), Path("/sys"))


def address_problems(config: ShipperConfig) -> list[tuple[str, str]]:
    """Listeners that would take the same address: the API, and every forward source.

    ``0.0.0.0:P`` clashes with any IPv4 address on port P and ``[::]:P`` with any address
    (Linux binds it dual-stack); port 0 picks a free port, so it never clashes.
    """
    listeners: list[tuple[str, str]] = []
    if config.api.enabled:
        listeners.append(("api.address", config.api.address))
    listeners += [(f"sources.{name}.address", src.address) for name, src in config.sources.items()
                  if src.type == "forward"]
    problems: list[tuple[str, str]] = []
    taken: list[tuple[str, str, int]] = []
    for key, address in listeners:
        try:
            host, port = parse_address(address)
        except ValueError:
            continue  # already reported by the model
        host = "127.0.0.1" if host == "localhost" else host
        other = next((k for k, h, p in taken if p == port != 0 and _overlap(h, host)), None)
        if other is not None:
            problems.append((key, f"same address as {other}: two listeners cannot share port {port}"))
        taken.append((key, host, port))
    return problems


def _overlap(a: str, b: str) -> bool:
    if a == b or _ANY_V6 in (a, b):
        return True
    return (a == _ANY_V4 and ":" not in b) or (b == _ANY_V4 and ":" not in a)


def data_dir_problems(data_dir: str) -> list[tuple[str, str]]:
    """A data_dir that cannot hold directories: under a regular file, or on /proc or /sys."""
    path = Path(data_dir).absolute()
    for fs in _KERNEL_FS:
        if path == fs or fs in path.parents:
            return [("data_dir", f"{data_dir} is under {fs}, a kernel file system, not storage")]
    for p in (path, *path.parents):
        try:
            found = p.exists()
        except OSError:
            break  # cannot look: leave it to start-up, which reports the cause
        if found:
            if not p.is_dir():
                where = "is" if p == path else f"is under {p}, which is"
                return [("data_dir", f"{data_dir} {where} not a directory")]
            break
    return []


@dataclass
class _Node:
    inputs: list[str] = field(default_factory=list)


@dataclass
class _Graph:
    """The names and inputs of a config the schema refused: what ``graph_problems`` reads."""

    sources: dict[str, _Node]
    transforms: dict[str, _Node]
    sinks: dict[str, _Node]


def raw_graph_problems(data: dict[str, Any]) -> list[tuple[str, str]]:
    """The graph problems of parsed config data that failed the schema, as far as it can be read.

    Every component name counts, even one whose settings are broken; only inputs that are a list of
    strings are followed. "Leads nowhere" is left out when some component's inputs cannot be read.
    """
    kinds: dict[str, dict[str, _Node]] = {}
    unreadable = False
    for kind in ("sources", "transforms", "sinks"):
        comps = data.get(kind)
        kinds[kind] = {}
        if not isinstance(comps, dict):
            unreadable = unreadable or comps is not None
            continue
        for name, comp in comps.items():
            inputs = comp.get("inputs", []) if isinstance(comp, dict) else None
            readable = isinstance(inputs, list) and all(isinstance(i, str) for i in inputs)
            unreadable = unreadable or (kind != "sources" and not readable)
            kinds[kind][str(name)] = _Node(list(inputs) if readable and isinstance(inputs, list) else [])
    graph = _Graph(kinds["sources"], kinds["transforms"], kinds["sinks"])
    # The model's own check, run over this stand-in, so the graph rules live in one place.
    problems = ShipperConfig.graph_problems(cast(ShipperConfig, graph))
    if unreadable:
        problems = [p for p in problems if not p[1].startswith("is not an input of")]
    return problems
