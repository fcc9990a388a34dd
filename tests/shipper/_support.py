"""Helpers shared by the shipper's tests (see tests/README.md for the layout)."""

from __future__ import annotations

import os
from pathlib import Path

from shipper.event import Event
from shipper.sources.file.config import FileSourceConfig
from shipper.sources.file.tailer import Tailer


def tail_lines(tmp_path: Path, lines: list[str], source: str, fmt: str = "json") -> list[Event]:
    """Events exactly as the file source makes them from these lines."""
    path = tmp_path / f"{source}.log"
    path.write_text("".join(x + "\n" for x in lines))
    cfg = FileSourceConfig.model_validate({"type": "file", "include": [str(path)], "format": fmt})
    fd = os.open(path, os.O_RDONLY)
    try:
        st = os.fstat(fd)
        t = Tailer(source, str(path), fd, st.st_dev, st.st_ino, 1, 0, 0, cfg, "node", None)
        out: list[Event] = []
        t.read(out, 1 << 24)
    finally:
        os.close(fd)
    return out
