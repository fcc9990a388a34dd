"""The shipper's error hierarchy, grouped so callers can catch errors by meaning.

Config, startup, job and archive errors are defined here; the sinks' delivery errors extend
:class:`ShipperError` beside the outcome types they map to (``shipper.sinks._common.outcome``).
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


class JobError(ShipperError):
    """An operator job (retention, archive, verify, restore, replay) could not do its work.

    Every failure a job reports derives from it, so one ``except JobError`` catches them all; the
    message says what failed and where.
    """


class BackendError(JobError):
    """A backend (Loki, Elasticsearch, CloudWatch Logs) answered with an error."""


class ArchiveError(JobError):
    """An archive operation (its object stores and manifests, shared by the jobs and the s3 sink) failed."""


class StorageError(ArchiveError):
    """The object store failed; ``transient`` when trying again later may succeed."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class ObjectMissing(StorageError):
    """The object does not exist."""


class ArchiveConflict(ArchiveError):
    """The archive location already holds something that must not be overwritten."""


class ManifestError(ArchiveError):
    """A manifest is not valid; ``problems`` lists what is wrong."""

    def __init__(self, key: str, problems: list[str]) -> None:
        self.key = key
        self.problems = problems
        super().__init__(f"{key} is not a valid manifest: " + "; ".join(problems))
