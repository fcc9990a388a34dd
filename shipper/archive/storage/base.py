"""What the jobs and the ``s3`` sink need from an object store (:mod:`.url` opens one from a URL)."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

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
        """The object's bytes; raises :class:`~shipper.errors.ObjectMissing`."""

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
        """Raise :class:`~shipper.errors.StorageError` if the store is unusable."""

    def describe(self, key: str) -> str:
        """The full URL of a key, for messages."""
        return self.url.rstrip("/") + "/" + key

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients."""
