"""An archive URL (``s3://bucket/prefix`` or ``file:///dir``) and the store it names."""

from __future__ import annotations

from urllib.parse import unquote, urlparse

from shipper.archive.storage.base import LockSettings, ObjectStore


def parse_store_url(url: str) -> tuple[str, str, str]:
    """``(scheme, bucket or '', prefix or directory)`` of ``s3://bucket/prefix`` or ``file:///dir``."""
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ValueError(f"{url!r}: an s3 URL needs a bucket (s3://bucket/prefix)")
        return "s3", parsed.netloc, parsed.path.strip("/")
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise ValueError(f"{url!r}: a file URL has no host (file:///absolute/dir)")
        if not parsed.path:
            raise ValueError(f"{url!r}: a file URL needs a directory (file:///absolute/dir)")
        return "file", "", unquote(parsed.path)
    raise ValueError(f"{url!r}: expected s3://bucket/prefix or file:///dir")


def open_store(
    url: str,
    *,
    lock: LockSettings | None = None,
    region: str | None = None,
    endpoint: str | None = None,
    profile: str | None = None,
) -> ObjectStore:
    """The store for ``url``; ``region``/``endpoint``/``profile`` only matter for S3."""
    scheme, bucket, path = parse_store_url(url)
    if scheme == "file":
        if lock is not None:
            raise ValueError("object lock needs an s3:// archive; a file:// directory cannot lock objects")
        from shipper.archive.storage.local import LocalStore

        return LocalStore(path)
    from shipper.archive.storage.s3 import S3Store, build_s3_client

    return S3Store(bucket, path, build_s3_client(region=region, endpoint=endpoint, profile=profile), lock=lock)
