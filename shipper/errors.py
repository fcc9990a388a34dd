"""The shipper's error hierarchy, grouped so callers can catch errors by meaning.

A leaf module (it imports nothing of the shipper), so every package can raise these.
"""

from __future__ import annotations


class ShipperError(Exception):
    """Base class of the shipper's own errors."""


class ConfigError(ShipperError):
    """The configuration is invalid; ``problems`` lists ``(key path, message)`` pairs."""

    def __init__(self, problems: list[tuple[str, str]], source: str = "config") -> None:
        self.problems = problems
        self.source = source
        lines = "\n".join(f"  {path}: {msg}" for path, msg in problems)
        super().__init__(f"{source} is invalid ({len(problems)} problem(s)):\n{lines}")


class StartupError(ShipperError):
    """The shipper cannot start with a valid config (a port in use, a data_dir it cannot use, ...).

    The message is one line naming the key or file and the cause, fit to print as it is.
    """
