"""Per-source checkpoints: where each file (by device, inode and first-line fingerprint) was read to."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger("shipper.sources.file")


class CheckpointStore:
    """A JSON file of ``{"dev:ino": {"path", "fp", "offset", "gen"}}``, replaced atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}
        self._dirty = False
        try:
            data = orjson.loads(path.read_bytes())
            if isinstance(data, dict) and isinstance(data.get("files"), dict):
                self.entries = data["files"]
        except FileNotFoundError:
            pass
        except (OSError, orjson.JSONDecodeError) as exc:
            log.error("checkpoints %s unreadable (%s): files are read per read_from", path, exc)

    def get(self, key: str) -> dict[str, Any] | None:
        return self.entries.get(key)

    def set(self, key: str, path: str, fp: int, offset: int, gen: int) -> None:
        self.entries[key] = {"path": path, "fp": fp, "offset": offset, "gen": gen}
        self._dirty = True

    def mark_closed(self, key: str) -> None:
        """The file was read to its end after rotation; keep the entry so it is not re-read."""
        entry = self.entries.get(key)
        if entry is not None:
            entry["closed"] = True
            self._dirty = True

    def remove(self, key: str) -> None:
        if self.entries.pop(key, None) is not None:
            self._dirty = True

    def save(self, fsync: bool = True) -> None:
        """Write atomically: temp file, fsync, rename, fsync the directory."""
        if not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("wb") as f:
            f.write(orjson.dumps({"version": 1, "files": self.entries}))
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, self.path)
        if fsync:
            with contextlib.suppress(OSError):
                dfd = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
        self._dirty = False
