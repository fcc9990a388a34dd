"""A directory as an object store (``file:///dir``): atomic writes (temp file, fsync, rename)."""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

from shipper.archive.storage.base import ObjectInfo, ObjectStore
from shipper.errors import ObjectMissing, StorageError

_TMP_SUFFIX = ".tmp-ecvi"


class LocalStore(ObjectStore):
    """Objects are files under ``root``; a reader never sees a half-written one."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.url = self.root.resolve().as_uri()

    def _path(self, key: str) -> Path:
        if not key or key.startswith("/") or ".." in key.split("/"):
            raise StorageError(f"invalid object key {key!r}")
        return self.root / key

    def put(self, key: str, data: bytes, sha256: str) -> None:
        if hashlib.sha256(data).hexdigest() != sha256:
            raise StorageError(f"{self.describe(key)}: data does not match its SHA-256 (not written)")
        path = self._path(key)
        tmp = path.with_name(path.name + _TMP_SUFFIX)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            _fsync_dir(path.parent)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise StorageError(f"cannot write {path}: {exc.strerror or exc}", transient=True) from exc

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise ObjectMissing(f"{self.describe(key)} does not exist") from None
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror or exc}", transient=True) from exc

    def stat(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror or exc}", transient=True) from exc
        return ObjectInfo(key, len(data), hashlib.sha256(data).hexdigest())

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        out: list[ObjectInfo] = []
        base = self.root / prefix if prefix else self.root
        # The prefix may end inside a name ("date=2025-01-0"): walk its directory and filter.
        walk_from = base if prefix.endswith("/") or not prefix else base.parent
        if not walk_from.is_dir():
            return out
        for dirpath, _dirs, files in os.walk(walk_from):
            for name in files:
                if name.endswith(_TMP_SUFFIX):
                    continue
                full = Path(dirpath, name)
                key = full.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    out.append(ObjectInfo(key, full.stat().st_size))
        return sorted(out, key=lambda o: o.key)

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create {self.root}: {exc.strerror or exc}") from exc
        if not os.access(self.root, os.W_OK):
            raise StorageError(f"{self.root} is not writable")


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
