"""Errors of the jobs, grouped so the CLI (and callers) can catch them by meaning.

The archive's own errors (stores, manifests, conflicts) live in :mod:`shipper.archive.errors`;
``JobError`` is their common base, so one ``except JobError`` catches every failure of a job.
"""

from __future__ import annotations

from shipper.archive.errors import ArchiveConflict, ArchiveError, ManifestError, ObjectMissing, StorageError

JobError = ArchiveError


class BackendError(JobError):
    """A backend (Loki, Elasticsearch, CloudWatch Logs) answered with an error."""


__all__ = ["ArchiveConflict", "BackendError", "JobError", "ManifestError", "ObjectMissing", "StorageError"]
