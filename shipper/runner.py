"""Runs the shipper process: API, topology, signals (SIGTERM stops, SIGHUP reloads).

A reload never costs the running pipeline: the new config is loaded and preflighted (data_dir
usable and lockable, new listen addresses free) while the old topology keeps running; only then
is the old one stopped and the new one started. If the new one still fails to start, the old
config is started again (checkpoints and buffers are on disk, so nothing is lost). Every outcome
is logged and counted in ``ecvi_shipper_config_reloads_total{outcome}``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import resource
import signal
from pathlib import Path

from shipper import metrics
from shipper.allocator import keep_freed_memory
from shipper.api.health import Health
from shipper.api.server import ApiServer, bind_problem
from shipper.config import ConfigError, ShipperConfig, load_config
from shipper.config.model import ApiConfig
from shipper.errors import StartupError
from shipper.sources.forward.config import ForwardSourceConfig
from shipper.topology import DataDirLock, Topology, usable_directory

log = logging.getLogger("shipper")

# The pipeline allocates millions of short-lived, acyclic objects (events, dicts, bytes): with
# Python's defaults, collections took 15 % of the CPU on the Loki path. Measured (docs/benchmarks.md):
# 10,000 with start-up frozen cuts that to 2 % at the same peak RSS; 20,000 and above raised it.
GC_GEN0_THRESHOLD = 10_000


async def run_shipper(config: ShipperConfig, config_path: str | Path | None = None) -> None:
    """Run until SIGTERM/SIGINT; on SIGHUP re-read ``config_path`` and apply it if it can start.

    Raises :class:`StartupError` (one line naming the key) if the shipper cannot start.
    """
    _raise_open_files_limit()
    keep_freed_memory()
    shipper = _Shipper(config)
    await shipper.start()
    gc_defaults = gc.get_threshold()
    settle_gc()
    stop = asyncio.Event()
    reload_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload_requested.set)
    try:
        while True:
            stop_wait = asyncio.create_task(stop.wait())
            reload_wait = asyncio.create_task(reload_requested.wait())
            await asyncio.wait({stop_wait, reload_wait}, return_when=asyncio.FIRST_COMPLETED)
            stop_wait.cancel()
            reload_wait.cancel()
            if stop.is_set():
                log.info("stopping: flushing within %.0fs", shipper.config.shutdown_timeout_secs)
                break
            reload_requested.clear()
            if config_path is None:
                log.warning("SIGHUP ignored: the shipper was not started from a config file")
                continue
            gc.unfreeze()  # the old topology's objects may be garbage after the reload
            outcome = await shipper.reload(config_path)
            settle_gc()
            metrics.CONFIG_RELOADS.labels(outcome).inc()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        await shipper.stop()
        gc.unfreeze()  # leave the collector as it was found (in-process callers, tests)
        gc.set_threshold(*gc_defaults)


class _Shipper:
    """The running parts of one process: the data_dir lock, the API and the topology."""

    def __init__(self, config: ShipperConfig) -> None:
        self.config = config
        self.health = Health()
        self.lock: DataDirLock | None = None
        self.api: ApiServer | None = None
        self.topology: Topology | None = None

    async def start(self) -> None:
        try:
            self.lock = DataDirLock.acquire(self.config.data_dir)  # first: a second shipper names the data_dir
            if self.config.api.enabled:
                self.api = self._start_api(self.config.api.address)
            topology = Topology(self.config, self.health, lock=self.lock)
            await topology.start()
            self.topology = topology
        except BaseException:
            await self.stop()
            raise

    def _start_api(self, address: str) -> ApiServer:
        api = ApiServer(address, self.health)
        api.start()
        log.info("api listening on %s (/metrics, /health, /ready)", address)
        return api

    async def stop(self) -> None:
        if self.topology is not None:
            await self.topology.stop()
            self.topology = None
        if self.api is not None:
            self.api.stop()
            self.api = None
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    async def reload(self, path: str | Path) -> str:
        """Apply the config at ``path`` if it can start; the outcome label for CONFIG_RELOADS."""
        try:
            new = load_config(path)
        except ConfigError as exc:
            log.error("reload refused, keeping the running config: %s", exc)
            return "invalid"
        except Exception as exc:  # e.g. bytes that are not UTF-8: the file is hostile input too
            log.error("reload refused, keeping the running config: cannot read %s: %s: %s", path,
                      type(exc).__name__, exc)
            return "invalid"
        wanted_api = new.api
        api_changed = wanted_api != self.config.api
        api_now = self._reload_api(new)  # the API is independent of the pipeline: move it first
        self.config = self.config.model_copy(update={"api": api_now})
        new = new.model_copy(update={"api": api_now})
        old = self.config
        if new == old:  # the pipeline is unchanged
            if not api_changed:
                log.info("reload: %s is unchanged", path)
                return "unchanged"
            if api_now != wanted_api:
                return "start_failed"
            log.info("reload applied (only the api changed)")
            return "applied"
        try:
            new_lock = self._preflight(new)
        except StartupError as exc:
            log.error("reload refused, keeping the running config: %s", exc)
            return "start_failed"
        log.info("reloading config from %s", path)
        assert self.topology is not None and self.lock is not None
        await self.topology.stop()
        self.topology = None
        topology = Topology(new, self.health, lock=new_lock)
        try:
            await topology.start()
        except StartupError as exc:
            log.error("reload failed, starting the previous config again: %s", exc)
            if new_lock is not self.lock:
                new_lock.release()
            restored = Topology(old, self.health, lock=self.lock)
            await restored.start()  # if even this fails, StartupError ends the process
            self.topology = restored
            return "start_failed"
        if new_lock is not self.lock:
            self.lock.release()
            self.lock = new_lock
        self.config, self.topology = new, topology
        log.info("reload applied")
        return "applied"

    def _reload_api(self, new: ShipperConfig) -> ApiConfig:
        """Move the API to ``new.api`` if it changed; return the API config now in effect."""
        old = self.config.api
        if new.api == old:
            return old
        if not new.api.enabled:
            if self.api is not None:
                self.api.stop()
                self.api = None
                log.info("api stopped (api.enabled: false)")
            return new.api
        if self.api is not None and old.enabled and new.api.address == old.address:
            return new.api
        try:
            api = self._start_api(new.api.address)
        except StartupError as exc:
            where = f"keeping it on {old.address}" if self.api is not None else "the API stays off"
            log.error("reload: cannot move the api (%s); %s", exc, where)
            return old
        if self.api is not None:
            self.api.stop()
        self.api = api
        return new.api

    def _preflight(self, new: ShipperConfig) -> DataDirLock:
        """What can be checked while the old topology runs; the data_dir lock the new one will use."""
        assert self.lock is not None
        running = {s.address for s in self.config.sources.values() if isinstance(s, ForwardSourceConfig)}
        for name, src in new.sources.items():
            if isinstance(src, ForwardSourceConfig) and src.address not in running:
                problem = bind_problem(src.address)
                if problem:
                    raise StartupError(f"sources.{name}.address: {problem}")
        if self.lock.covers(new.data_dir):
            usable_directory(Path(new.data_dir))
            return self.lock
        return DataDirLock.acquire(new.data_dir)


def settle_gc(gen0: int = GC_GEN0_THRESHOLD) -> None:
    """Move what start-up made out of the collector's sight and make gen-0 passes rarer.

    Start-up objects (config models, compiled templates, modules) live as long as the process:
    frozen, no collection walks them again. A reload unfreezes first, so an old topology is freed.
    """
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0, gen1, gen2)


def _raise_open_files_limit() -> None:
    """Tailing many files needs many descriptors: raise the soft limit to the hard one."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else soft, hard))
    except (ValueError, OSError) as exc:
        log.warning("cannot raise the open files limit: %s", exc)
