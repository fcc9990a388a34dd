"""What /health and /ready report: written on the event loop, read from the API thread.

Ready means the pipeline can ship right now: started and not stopping, every sink's health check
passed, every sink's workers and every source running, and the event loop alive (it stamps
``heartbeat`` a few times a second; a hung loop lets the stamp age). The loop replaces the dicts
rather than mutating them, so the API thread always reads a consistent snapshot.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

HEARTBEAT_INTERVAL_SECS = 0.25


@dataclass
class Health:
    """The pipeline's state as the probes see it."""

    started: bool = False
    stopping: bool = False
    sinks: dict[str, bool | None] = field(default_factory=dict)  # health check: None until it ran
    sink_workers: dict[str, bool] = field(default_factory=dict)
    sources: dict[str, bool] = field(default_factory=dict)
    heartbeat: float | None = None  # time.monotonic() of the loop's last stamp
    max_heartbeat_age_secs: float = 5.0

    def beat(self) -> None:
        """Called from the event loop: it is alive."""
        self.heartbeat = time.monotonic()

    def set_source(self, name: str, running: bool) -> None:
        self.sources = {**self.sources, name: running}

    def heartbeat_age(self) -> float | None:
        return None if self.heartbeat is None else time.monotonic() - self.heartbeat

    def ready(self) -> bool:
        return bool(self.report()["ready"])

    def report(self) -> dict[str, Any]:
        """The /ready body: the verdict and every check behind it."""
        sinks, workers, sources = self.sinks, self.sink_workers, self.sources
        age = self.heartbeat_age()
        loop_alive = age is not None and age <= self.max_heartbeat_age_secs
        ready = (
            self.started and not self.stopping and loop_alive and bool(sinks)
            and all(v is True for v in sinks.values()) and all(workers.values()) and all(sources.values())
        )
        return {
            "ready": ready, "started": self.started, "stopping": self.stopping,
            "loop_heartbeat_age_secs": None if age is None else round(age, 3),
            "sinks": sinks, "sink_workers": workers, "sources": sources,
        }
