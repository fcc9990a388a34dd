"""Runs the shipper process: API, topology, signals (SIGTERM stops, SIGHUP reloads)."""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
from pathlib import Path

from shipper.api.server import ApiServer
from shipper.config import ConfigError, ShipperConfig, load_config
from shipper.topology import Health, Topology

log = logging.getLogger("shipper")


async def run_shipper(config: ShipperConfig, config_path: str | Path | None = None) -> None:
    """Run until SIGTERM/SIGINT; on SIGHUP re-read ``config_path`` and restart the topology if valid."""
    _raise_open_files_limit()
    health = Health()
    api = ApiServer(config.api.address, health) if config.api.enabled else None
    if api:
        api.start()
        log.info("api listening on %s (/metrics, /health, /ready)", config.api.address)
    stop = asyncio.Event()
    reload_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload_requested.set)
    topology = Topology(config, health)
    try:
        await topology.start()
        while True:
            stop_wait = asyncio.create_task(stop.wait())
            reload_wait = asyncio.create_task(reload_requested.wait())
            await asyncio.wait({stop_wait, reload_wait}, return_when=asyncio.FIRST_COMPLETED)
            stop_wait.cancel()
            reload_wait.cancel()
            if stop.is_set():
                log.info("stopping: flushing within %.0fs", config.shutdown_timeout_secs)
                break
            reload_requested.clear()
            if config_path is None:
                continue
            try:
                new_config = load_config(config_path)
            except ConfigError as exc:
                log.error("reload refused, keeping the running config: %s", exc)
                continue
            log.info("reloading config from %s", config_path)
            await topology.stop()
            config = new_config
            health.started = health.stopping = False
            topology = Topology(config, health)
            await topology.start()
    finally:
        await topology.stop()
        if api:
            api.stop()


def _raise_open_files_limit() -> None:
    """Tailing many files needs many descriptors: raise the soft limit to the hard one."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else soft, hard))
    except (ValueError, OSError) as exc:
        log.warning("cannot raise the open files limit: %s", exc)
