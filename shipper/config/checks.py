"""Checks of a valid config against what it needs to start: free listen addresses, a usable data_dir."""

from __future__ import annotations

from pathlib import Path

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
