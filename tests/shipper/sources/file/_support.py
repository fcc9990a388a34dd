"""What the file source's tests share: a quick-polling config, an event collector, a bounded run."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from shipper.event import Event
from shipper.sources.file.config import FileSourceConfig
from shipper.sources.file.source import FileSource


def cfg(include: str, **kw: Any) -> FileSourceConfig:
    """A file source config for ``include`` that globs, polls and waits on rotation quickly (``kw`` overrides)."""
    base: dict[str, Any] = {"type": "file", "include": [include], "glob_interval_secs": 0.05,
                            "poll_interval_secs": 0.01, "rotate_wait_secs": 0.3}
    base.update(kw)
    return FileSourceConfig.model_validate(base)


class Collector:
    """The source's sink: keeps every batch it is handed, in order."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def __call__(self, events: list[Event]) -> None:
        self.events.extend(events)

    def messages(self) -> list[str]:
        return [str(e.record.get("message")) for e in self.events]


async def run_until(src: FileSource, cond: Callable[[], bool], timeout: float = 10.0) -> None:
    """Run ``src`` until ``cond`` holds or ``timeout`` seconds pass, then stop it and save its checkpoints."""
    task = asyncio.create_task(src.run())
    try:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not cond() and loop.time() < end:
            await asyncio.sleep(0.02)
    finally:
        await src.stop()
        await asyncio.wait_for(task, 5)
        src.save_checkpoints()
