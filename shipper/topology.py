"""Wires sources, transforms, buffers and sink drivers from a config, and runs them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipper.buffer import DiskBuffer
from shipper.config import ShipperConfig
from shipper.event import Event
from shipper.sinks._common.driver import SinkDriver
from shipper.sinks.registry import build_sink
from shipper.sources.file.config import FileSourceConfig
from shipper.sources.file.source import FileSource
from shipper.transforms import Transform, build_transform

log = logging.getLogger("shipper")

Route = tuple[tuple[Transform, ...], list[str]]


def routes_for(config: ShipperConfig, start: str) -> list[Route]:
    """Every transform chain leading from ``start`` to sinks (a chain feeds the sinks listed with it)."""
    out: list[Route] = []
    sinks = [name for name, s in config.sinks.items() if start in s.inputs]
    if sinks:
        out.append(((), sinks))
    for tname, t in config.transforms.items():
        if start in t.inputs:
            fn = build_transform(t)
            for chain, sink_names in routes_for(config, tname):
                out.append(((fn, *chain), sink_names))
    return out


def apply_chain(chain: tuple[Transform, ...], events: list[Event]) -> list[Event]:
    """Run a transform chain over copies, so other routes see the events unchanged."""
    out = [Event(dict(e.record), e.raw, e.ts_ns, dict(e.meta)) for e in events]
    for fn in chain:
        out = fn(out)
    return out


@dataclass
class Health:
    """What /health and /ready report (read from the API thread)."""

    started: bool = False
    stopping: bool = False
    sinks: dict[str, bool | None] = field(default_factory=dict)

    def ready(self) -> bool:
        return self.started and not self.stopping and all(v is True for v in self.sinks.values())


class Topology:
    """One running pipeline."""

    def __init__(self, config: ShipperConfig, health: Health | None = None) -> None:
        self.config = config
        self.health = health or Health()
        self.data_dir = Path(config.data_dir)
        self.buffers: dict[str, DiskBuffer] = {}
        self.drivers: dict[str, SinkDriver] = {}
        self.sources: dict[str, Any] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._checkpointer: asyncio.Task[None] | None = None

    def _deliver_for(self, source: str) -> Callable[[list[Event]], Awaitable[None]]:
        routes = routes_for(self.config, source)

        async def deliver(events: list[Event]) -> None:
            writes: list[Awaitable[bool]] = []
            for chain, sinks in routes:
                evs = apply_chain(chain, events) if chain else events
                if evs:
                    writes.extend(self.buffers[s].append(evs) for s in sinks)
            if len(writes) == 1:
                await writes[0]
            elif writes:
                await asyncio.gather(*writes)

        return deliver

    async def start(self) -> None:
        """Open buffers and sinks first, then sources (so nothing is read with nowhere to go)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for name, scfg in self.config.sinks.items():
            b = scfg.buffer
            self.buffers[name] = DiskBuffer(
                self.data_dir / "buffers" / name, name, max_bytes=b.max_bytes, when_full=b.when_full,
                fsync=b.fsync, segment_bytes=b.segment_bytes,
            )
            sink = build_sink(name, scfg, str(self.data_dir))
            driver = SinkDriver(sink, self.buffers[name], scfg, str(self.data_dir))
            await driver.start()
            self.drivers[name] = driver
        for name, src in self.config.sources.items():
            deliver = self._deliver_for(name)
            if isinstance(src, FileSourceConfig):
                fs = FileSource(name, src, deliver, self.data_dir)
                self.sources[name] = fs
                self._tasks.append(asyncio.create_task(self._guard(name, fs.run()), name=f"source-{name}"))
            else:
                from shipper.sources.forward.server import ForwardSource

                fwd = ForwardSource(name, src, deliver)
                await fwd.start()
                self.sources[name] = fwd
        self._checkpointer = asyncio.create_task(self._checkpoint_loop(), name="checkpointer")
        self.health.started = True
        log.info("shipper started: %d source(s), %d sink(s)", len(self.sources), len(self.drivers))

    async def _guard(self, name: str, coro: Awaitable[None]) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            from shipper.buffer.disk import BufferClosed

            if isinstance(exc, BufferClosed):
                return
            log.exception("source %s failed", name)

    def sync_health(self) -> None:
        self.health.sinks = {n: d.healthy for n, d in self.drivers.items()}

    async def _checkpoint_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.checkpoint_interval_secs)
            try:
                self.checkpoint()
            except OSError as exc:  # e.g. a full disk: keep the old checkpoints, try again later
                log.error("cannot save checkpoints: %s", exc)
            self.sync_health()

    def checkpoint(self) -> None:
        """fsync buffers, then save source checkpoints: a checkpoint never runs ahead of the data."""
        for b in self.buffers.values():
            if not b.closed:
                b.sync()
        for s in self.sources.values():
            if isinstance(s, FileSource):
                s.save_checkpoints(fsync=True)

    async def stop(self) -> None:
        """Stop reading, save checkpoints, let sinks drain within ``shutdown_timeout_secs``."""
        self.health.stopping = True
        timeout = self.config.shutdown_timeout_secs
        for s in self.sources.values():
            await s.stop()
        if self._tasks:
            _done, pending = await asyncio.wait(self._tasks, timeout=min(5.0, timeout))
            for t in pending:
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t
        if self._checkpointer:
            self._checkpointer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpointer
        try:
            self.checkpoint()
        except OSError as exc:
            log.error("cannot save checkpoints at shutdown: %s", exc)
        await asyncio.gather(*(d.stop(timeout) for d in self.drivers.values()))
        for s in self.sources.values():
            if isinstance(s, FileSource):
                s.close()
        log.info("shipper stopped")
