"""Per-source checkpoints: where each file (by device, inode and first-line fingerprint) was read to."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

import orjson

from shipper.sources.file.paths import display_path

log = logging.getLogger("shipper.sources.file")


def entry_path(entry: dict[str, Any]) -> str:
    """The path an entry was written for, exactly (its name need not be UTF-8)."""
    raw = entry.get("path_hex")
    if isinstance(raw, str):
        try:
            return os.fsdecode(bytes.fromhex(raw))
        except ValueError:
            pass
    return str(entry["path"])


class CheckpointStore:
    """A JSON file of ``{"dev:ino": {"path", "fp", "offset", "gen"}}``, replaced atomically.

    ``path`` is shown as UTF-8; a name with other bytes also keeps them, hex-encoded, in ``path_hex``.
    """

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
        entry: dict[str, Any] = {"path": display_path(path), "fp": fp, "offset": offset, "gen": gen}
        if entry["path"] != path:  # a name that is not UTF-8: keep its exact bytes too
            entry["path_hex"] = os.fsencode(path).hex()
        self.entries[key] = entry
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
