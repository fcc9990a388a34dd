"""What the jobs and the ``s3`` sink need from an object store, and how a URL picks one."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from urllib.parse import unquote, urlparse

LockMode = Literal["compliance", "governance"]


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """An object's key (relative to the store's root), stored size, and SHA-256 (hex) when known."""

    key: str
    size: int
    sha256: str | None = None


@dataclass(frozen=True, slots=True)
class LockSettings:
    """S3 Object Lock retention put on every object written (WORM copies for audit)."""

    mode: LockMode
    days: int

    def __post_init__(self) -> None:
        if self.mode not in ("compliance", "governance"):
            raise ValueError(f"object lock mode must be compliance or governance, not {self.mode!r}")
        if self.days < 1:
            raise ValueError("object lock days must be at least 1")

    def put_params(self, now: datetime) -> dict[str, object]:
        """``PutObject`` parameters: the mode and a retain-until date ``days`` after ``now``."""
        return {
            "ObjectLockMode": self.mode.upper(),
            "ObjectLockRetainUntilDate": now + timedelta(days=self.days),
        }


class ObjectStore(abc.ABC):
    """Keys are ``/``-separated paths relative to the store's root (the URL's prefix)."""

    url: str

    @abc.abstractmethod
    def put(self, key: str, data: bytes, sha256: str) -> None:
        """Write the whole object; ``sha256`` (hex) is checked by the store where it can."""

    @abc.abstractmethod
    def get(self, key: str) -> bytes:
        """The object's bytes; raises :class:`~shipper.jobs.errors.ObjectMissing`."""

    @abc.abstractmethod
    def stat(self, key: str) -> ObjectInfo | None:
        """Size and SHA-256 of an object, or None when it does not exist."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> list[ObjectInfo]:
        """Every object under ``prefix`` (recursively), sorted by key; ``sha256`` may be None."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove an object (missing is fine)."""

    def check(self) -> None:  # noqa: B027 - optional hook
        """Raise :class:`~shipper.jobs.errors.StorageError` if the store is unusable."""

    def describe(self, key: str) -> str:
        """The full URL of a key, for messages."""
        return self.url.rstrip("/") + "/" + key

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients."""


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
        from shipper.jobs.storage.local import LocalStore

        return LocalStore(path)
    from shipper.jobs.storage.s3 import S3Store, build_s3_client

    return S3Store(bucket, path, build_s3_client(region=region, endpoint=endpoint, profile=profile), lock=lock)
