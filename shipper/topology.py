"""Wires sources, transforms, buffers and sink drivers from a config, and runs them.

Start-up either completes or undoes itself and raises :class:`StartupError` with one line naming
the key at fault. A file source whose task dies is restarted from its saved checkpoints with
backoff; a hung event loop, a dead source or a sink not (yet) healthy shows on /ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import cast

from shipper import metrics
from shipper.api.health import HEARTBEAT_INTERVAL_SECS, Health
from shipper.api.server import describe_bind_error
from shipper.buffer import DiskBuffer
from shipper.buffer.disk import BufferClosed
from shipper.config import ShipperConfig
from shipper.errors import StartupError
from shipper.event import Event
from shipper.lines import Item, LineBatch, flatten
from shipper.sinks._common.driver import SinkDriver
from shipper.sinks.registry import build_sink
from shipper.sources.base import Source
from shipper.sources.file.config import FileSourceConfig
from shipper.sources.file.source import FileSource
from shipper.transforms import Transform, build_transform

log = logging.getLogger("shipper")

__all__ = ["DataDirLock", "Health", "Topology", "apply_chain", "routes_for"]

_RESTART_INITIAL_SECS = 1.0
_RESTART_MAX_SECS = 30.0

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
    """Run a transform chain over copies, so other routes see the events unchanged. A copy stays
    ``derived`` (its record is what its raw line parses to) until a transform changes its record."""
    out = [Event(dict(e.record), e.raw, e.ts_ns, dict(e.meta), e.derived) for e in events]
    for fn in chain:
        out = fn(out)
    return out


def apply_chain_items(chain: tuple[Transform, ...], items: Sequence[Item]) -> list[Item]:
    """:func:`apply_chain` over events and line batches, in order: a line batch that every
    transform of the chain passes whole (``passes``, the redact transform's screen) goes on as it
    is; every other item goes through the chain as events."""
    screens = [screen for fn in chain if (screen := getattr(fn, "passes", None)) is not None]
    if len(screens) < len(chain) or not any(type(it) is LineBatch for it in items):
        return list(apply_chain(chain, flatten(items)))
    out: list[Item] = []
    pending: list[Item] = []
    for it in items:
        if type(it) is LineBatch and all(screen(it) for screen in screens):
            if pending:
                out.extend(apply_chain(chain, flatten(pending)))
                pending = []
            out.append(it)
        else:
            pending.append(it)
    if pending:
        out.extend(apply_chain(chain, flatten(pending)))
    return out


class DataDirLock:
    """An exclusive ``flock`` on ``<data_dir>/.lock``: one shipper per data_dir.

    Two shippers on one data_dir would share checkpoints and buffers (the second buffers forever).
    The holder's pid is written in the file so the refusal can name it. The lock lives as long as
    the open descriptor, so a crash releases it.
    """

    def __init__(self, data_dir: Path, fd: int) -> None:
        self.data_dir = data_dir
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, data_dir: str | Path) -> DataDirLock:
        """Create ``data_dir`` if needed and lock it; raises :class:`StartupError` naming ``data_dir``."""
        path = Path(data_dir)
        usable_directory(path)
        lock_path = path / ".lock"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StartupError(f"data_dir: cannot write {lock_path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = "".join(c for c in os.pread(fd, 32, 0).decode("ascii", "replace") if c.isdigit()) or "unknown"
            os.close(fd)
            raise StartupError(f"data_dir: {path} is in use by another shipper (pid {holder})") from None
        with contextlib.suppress(OSError):  # the pid is a courtesy; the lock is what counts
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(path, fd)

    def covers(self, data_dir: str | Path) -> bool:
        """Whether this lock is for ``data_dir`` (the same directory, however spelled)."""
        return self.data_dir.resolve() == Path(data_dir).resolve()

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def usable_directory(path: Path) -> None:
    """Create ``path`` if needed; raise :class:`StartupError` naming ``data_dir`` if it is not a writable directory."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise StartupError(f"data_dir: {path} is not a directory") from None
    except OSError as exc:
        raise StartupError(f"data_dir: cannot create {path}: {exc.strerror}") from None
    if not path.is_dir():
        raise StartupError(f"data_dir: {path} is not a directory")
    if not os.access(path, os.W_OK | os.X_OK):
        raise StartupError(f"data_dir: {path} is not writable")


class Topology:
    """One running pipeline.

    ``lock`` is the data_dir lock when the caller holds it (the runner keeps it across reloads);
    without one, :meth:`start` takes it and :meth:`stop` releases it.
    """

    def __init__(self, config: ShipperConfig, health: Health | None = None, lock: DataDirLock | None = None) -> None:
        self.config = config
        self.health = health or Health()
        self.data_dir = Path(config.data_dir)
        self.buffers: dict[str, DiskBuffer] = {}
        self.drivers: dict[str, SinkDriver] = {}
        self.sources: dict[str, Source] = {}
        self._lock = lock
        self._own_lock = False
        self._tasks: list[asyncio.Task[None]] = []
        self._background: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._stopped = False

    def _deliver_for(self, source: str) -> Callable[[Sequence[Item]], Awaitable[None]]:
        """Write a source's batch (events, line batches) to each target sink's buffer; a transform
        chain gets the batch's events."""
        routes = routes_for(self.config, source)

        async def deliver(items: Sequence[Item]) -> None:
            writes: list[Awaitable[bool]] = []
            for chain, sinks in routes:
                evs: Sequence[Item] = apply_chain_items(chain, items) if chain else items
                if evs:
                    writes.extend(self.buffers[s].append(evs) for s in sinks)
            if len(writes) == 1:
                await writes[0]
            elif writes:
                await asyncio.gather(*writes)

        return deliver

    async def start(self) -> None:
        """Open buffers and sinks first, then sources (so nothing is read with nowhere to go).

        On failure everything started is stopped again and :class:`StartupError` is raised.
        """
        self.health.started = self.health.stopping = False
        try:
            await self._start()
        except BaseException as exc:
            await self.stop(timeout=0.1)
            if isinstance(exc, Exception) and not isinstance(exc, StartupError):
                raise StartupError(f"start-up failed: {type(exc).__name__}: {_first_line(exc)}") from exc
            raise

    async def _start(self) -> None:
        self.health.sources = dict.fromkeys(self.config.sources, False)  # each reports once it runs
        if self._lock is None:
            self._lock = DataDirLock.acquire(self.data_dir)
            self._own_lock = True
        for name, scfg in self.config.sinks.items():
            b = scfg.buffer
            bdir = self.data_dir / "buffers" / name
            try:
                self.buffers[name] = DiskBuffer(
                    bdir, name, max_bytes=b.max_bytes, when_full=b.when_full, fsync=b.fsync,
                    segment_bytes=b.segment_bytes,
                )
            except OSError as exc:
                raise StartupError(f"data_dir: cannot open the buffer {bdir}: {exc.strerror or exc}") from None
            try:
                sink = build_sink(name, scfg, str(self.data_dir))
                driver = SinkDriver(sink, self.buffers[name], scfg, str(self.data_dir))
                await driver.start()
            except Exception as exc:
                raise StartupError(f"sinks.{name}: {type(exc).__name__}: {_first_line(exc)}") from None
            self.drivers[name] = driver
        for name, src in self.config.sources.items():
            deliver = self._deliver_for(name)
            if isinstance(src, FileSourceConfig):
                try:
                    self.sources[name] = FileSource(name, src, None, self.data_dir, deliver_items=deliver)
                except OSError as exc:
                    raise StartupError(f"sources.{name}: cannot read its checkpoints: {exc}") from None
                self._tasks.append(asyncio.create_task(self._supervise(name, src), name=f"source-{name}"))
            else:
                from shipper.sources.forward.server import ForwardSource

                fwd = ForwardSource(name, src, deliver)
                try:
                    await fwd.start()
                except OSError as exc:
                    raise StartupError(f"sources.{name}.address: {describe_bind_error(src.address, exc)}") from None
                self.sources[name] = fwd
                self.health.set_source(name, True)
                metrics.COMPONENT_UP.labels(f"source:{name}").set(1)
        self._background.append(asyncio.create_task(self._checkpoint_loop(), name="checkpointer"))
        self._background.append(asyncio.create_task(self._monitor(), name="monitor"))
        self.health.beat()
        self.sync_health()
        self.health.started = True
        log.info("shipper started: %d source(s), %d sink(s)", len(self.sources), len(self.drivers))

    async def _supervise(self, name: str, config: FileSourceConfig) -> None:
        """Run a file source; when it dies, restart it from its checkpoints (backoff 1 s doubling to 30 s)."""
        component = f"source:{name}"
        up = metrics.COMPONENT_UP.labels(component)
        delay = _RESTART_INITIAL_SECS
        while not self._stopping.is_set():
            began = time.monotonic()
            self.health.set_source(name, True)
            up.set(1)
            try:
                await cast(FileSource, self.sources[name]).run()  # _supervise runs file sources only
                return
            except BufferClosed:  # the topology is stopping
                return
            except Exception as exc:
                if self._stopping.is_set():
                    return
                self.health.set_source(name, False)
                up.set(0)
                if time.monotonic() - began > _RESTART_MAX_SECS:
                    delay = _RESTART_INITIAL_SECS  # it ran fine for a while: not a crash loop
                log.error("source %s failed (%s: %s); restarting it in %.0fs", name, type(exc).__name__,
                          _first_line(exc), delay, exc_info=exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            if self._stopping.is_set():
                return
            delay = min(delay * 2, _RESTART_MAX_SECS)
            if not self._restart_source(name, config):
                self.health.set_source(name, False)
                up.set(0)
                continue
            metrics.COMPONENT_RESTARTS.labels(component).inc()

    def _restart_source(self, name: str, config: FileSourceConfig) -> bool:
        """Replace a dead file source with a fresh one reading from the checkpoints it had saved."""
        old = cast(FileSource, self.sources[name])
        try:
            self.checkpoint()  # what it delivered is durable; resume right after it
        except OSError as exc:
            log.error("cannot save checkpoints before restarting source %s: %s", name, exc)
        old.close()
        try:
            self.sources[name] = FileSource(name, config, None, self.data_dir, deliver_items=self._deliver_for(name))
        except OSError as exc:
            log.error("cannot restart source %s: %s", name, exc)
            return False
        return True

    def sync_health(self) -> None:
        """Copy each sink's health check and worker state into ``health`` (read by /ready)."""
        self.health.sinks = {n: d.healthy for n, d in self.drivers.items()}
        self.health.sink_workers = {n: d.up for n, d in self.drivers.items()}

    async def _monitor(self) -> None:
        while True:
            self.health.beat()
            self.sync_health()
            await asyncio.sleep(HEARTBEAT_INTERVAL_SECS)

    async def _checkpoint_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.checkpoint_interval_secs)
            try:
                self.checkpoint()
            except OSError as exc:  # e.g. a full disk: keep the old checkpoints, try again later
                log.error("cannot save checkpoints: %s", exc)
            except Exception:  # a bug in one save must not end checkpointing for good
                log.exception("cannot save checkpoints")

    def checkpoint(self) -> None:
        """fsync buffers, then save source checkpoints: a checkpoint never runs ahead of the data."""
        for b in self.buffers.values():
            if not b.closed:
                b.sync()
        for s in self.sources.values():
            if isinstance(s, FileSource):
                s.save_checkpoints(fsync=True)

    async def stop(self, timeout: float | None = None) -> None:
        """Stop reading, save checkpoints, let sinks drain within ``timeout`` (default ``shutdown_timeout_secs``)."""
        if self._stopped:
            return
        self._stopped = True
        self.health.stopping = True
        self._stopping.set()
        timeout = self.config.shutdown_timeout_secs if timeout is None else timeout
        for name, s in self.sources.items():
            await s.stop()
            metrics.COMPONENT_UP.labels(f"source:{name}").set(0)
        if self._tasks:
            _done, pending = await asyncio.wait(self._tasks, timeout=min(5.0, self.config.shutdown_timeout_secs))
            for t in pending:
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t
        for t in self._background:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
        try:
            self.checkpoint()
        except OSError as exc:
            log.error("cannot save checkpoints at shutdown: %s", exc)
        await asyncio.gather(*(d.stop(timeout) for d in self.drivers.values()))
        for b in self.buffers.values():  # a buffer whose driver never started
            if not b.closed:
                await b.close()
        for s in self.sources.values():
            if isinstance(s, FileSource):
                s.close()
        if self._own_lock and self._lock is not None:
            self._lock.release()
        log.info("shipper stopped")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0]
