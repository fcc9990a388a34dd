"""The archive's errors, defined in :mod:`shipper.errors`; importable here for the s3 sink."""

from shipper.errors import ArchiveConflict, ArchiveError, ManifestError, ObjectMissing, StorageError

__all__ = ["ArchiveConflict", "ArchiveError", "ManifestError", "ObjectMissing", "StorageError"]
