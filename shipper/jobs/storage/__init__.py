"""Object stores for archives: S3 (``s3://bucket/prefix``) and local directories (``file:///dir``)."""

from shipper.jobs.storage.base import LockSettings, ObjectInfo, ObjectStore, open_store, parse_store_url

__all__ = ["LockSettings", "ObjectInfo", "ObjectStore", "open_store", "parse_store_url"]
