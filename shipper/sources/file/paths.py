"""Expands ``include`` globs with a bounded walk, and shows paths whatever bytes their names hold.

Python's ``glob`` follows directory symlinks under ``**`` without remembering where it has been,
so two symlink loops make it walk 2^depth paths. Here ``**`` still follows directory symlinks (a
tree linked in from elsewhere keeps working), but walks each directory (by device and inode) at
most once per pattern: a link back to a directory on the path being walked is a loop, reported
and not entered; another link to a directory already walked is skipped quietly. Otherwise the
rules are glob's: ``*``, ``?`` and ``[...]`` match within one name, never a leading dot unless the
pattern has one, and ``**`` (a whole component) matches zero or more non-hidden directories (at the
end of a pattern, every file below).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import filter as fnmatch_filter

_MAGIC = re.compile(r"[*?[]")


def display_path(path: str) -> str:
    """``path`` as valid UTF-8 text: undecodable bytes of a name appear as ``\\xNN``.

    Names are bytes on Linux; one that is not UTF-8 must not break a log line, a checkpoint or
    an event's metadata (which are all encoded as UTF-8).
    """
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _split(pattern: str) -> tuple[str, list[str]]:
    root = os.sep if pattern.startswith(os.sep) else ""
    parts: list[str] = []
    for p in pattern.split(os.sep):
        if p and not (p == "**" and parts and parts[-1] == "**"):
            parts.append(p)
    return root, parts


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path or ".")
    except OSError:
        return []


def _dir_key(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path or ".")
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


@dataclass(frozen=True, slots=True)
class _Walked:
    """A directory walked under ``**`` and the one it was reached from."""

    key: tuple[int, int]
    parent: _Walked | None


def _on_chain(node: _Walked | None, key: tuple[int, int]) -> bool:
    while node is not None:
        if node.key == key:
            return True
        node = node.parent
    return False


def expand(pattern: str, on_loop: Callable[[str], None] | None = None) -> list[str]:
    """Paths matching ``pattern``, sorted; ``on_loop(path)`` for each directory link that loops."""
    root, parts = _split(pattern)
    n = len(parts)
    out: list[str] = []
    walked: set[tuple[int, int, int]] = set()  # (dev, ino, pattern position) of directories under **
    # (directory, position in parts, the directories walked under ** to get here)
    stack: list[tuple[str, int, _Walked | None]] = [(root, 0, None)]
    while stack:
        base, i, chain = stack.pop()
        if i == n:
            out.append(base)
            continue
        part = parts[i]
        if part == "**":
            key = _dir_key(base)
            if key is None:
                continue
            if (*key, i) in walked:
                if _on_chain(chain, key) and on_loop is not None:
                    on_loop(base)
                continue
            walked.add((*key, i))
            chain = _Walked(key, chain)
            if i + 1 < n:
                stack.append((base, i + 1, chain))  # ** as zero directories
            for name in _listdir(base):
                if name.startswith("."):
                    continue
                p = os.path.join(base, name)
                if os.path.isdir(p):
                    stack.append((p, i, chain))
                elif i + 1 == n:
                    out.append(p)  # a trailing ** matches the files below, not the directories
            continue
        if _MAGIC.search(part):
            names = _listdir(base)
            if not part.startswith("."):
                names = [x for x in names if not x.startswith(".")]
            for name in fnmatch_filter(names, part):
                stack.append((os.path.join(base, name), i + 1, chain))
            continue
        p = os.path.join(base, part)
        if i + 1 < n or os.path.lexists(p):
            stack.append((p, i + 1, chain))
    return sorted(set(out))
