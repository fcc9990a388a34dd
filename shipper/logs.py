"""The shipper's own log lines: logging_config's JSON (or console on a terminal) on stderr."""

from __future__ import annotations

import sys

from shipper import __version__

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def setup_logging(level: str) -> None:
    """Configure the process's logging for the shipper (``level`` is one of :data:`LEVELS`)."""
    import logging_config

    logging_config.configure(service="ecvi-logs-shipper", version=__version__, level=level, fmt="auto",
                             stream=sys.stderr)
