"""Errors of the archive: its stores and its manifests, catchable by meaning."""

from __future__ import annotations

from shipper.errors import ShipperError


class ArchiveError(ShipperError):
    """An archive operation could not be done; the message says what and where."""


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
