"""Errors of the jobs, grouped so the CLI (and callers) can catch them by meaning."""

from __future__ import annotations

from shipper.config.errors import ShipperError


class JobError(ShipperError):
    """A job could not do what it was asked; the message says what and where."""


class StorageError(JobError):
    """The object store failed; ``transient`` when trying again later may succeed."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class ObjectMissing(StorageError):
    """The object does not exist."""


class BackendError(JobError):
    """A backend (Loki, Elasticsearch, CloudWatch Logs) answered with an error."""


class ArchiveConflict(JobError):
    """The archive location already holds something this job must not overwrite."""
