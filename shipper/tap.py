"""``ecvi-logs tap``: run the sources and transforms, print what each sink would receive."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import sys
import tempfile

import orjson

from shipper.api.server import describe_bind_error
from shipper.config import ShipperConfig
from shipper.errors import StartupError
from shipper.event import Event
from shipper.sources.base import Deliver, Source
from shipper.sources.file.config import FileSourceConfig
from shipper.sources.file.source import FileSource
from shipper.sources.forward.server import ForwardSource
from shipper.topology import apply_chain, routes_for


async def run_tap(config: ShipperConfig, sink: str | None, limit: int) -> None:
    """Checkpoints go to a throwaway directory (seeded from the real ones), so nothing moves.

    A forward address that cannot be listened on raises :class:`StartupError` naming the key.
    """
    scratch = tempfile.mkdtemp(prefix="ecvi-logs-tap-")
    real = f"{config.data_dir}/checkpoints"
    with contextlib.suppress(FileNotFoundError):
        shutil.copytree(real, f"{scratch}/checkpoints")
    done = asyncio.Event()
    count = 0

    def make_deliver(source: str) -> Deliver:
        routes = routes_for(config, source)

        async def deliver(events: list[Event]) -> None:
            nonlocal count
            for chain, sinks in routes:
                targets = [s for s in sinks if sink is None or s == sink]
                if not targets:
                    continue
                for e in apply_chain(chain, events) if chain else events:
                    line = {"sinks": targets, "ts_ns": e.ts_ns, "record": e.record, "meta": e.meta}
                    sys.stdout.buffer.write(orjson.dumps(line, default=str) + b"\n")
                    count += 1
                    if limit and count >= limit:
                        done.set()
                        return
            sys.stdout.flush()

        return deliver

    sources: list[Source] = []
    tasks = []
    for name, cfg in config.sources.items():
        if isinstance(cfg, FileSourceConfig):
            fs = FileSource(name, cfg, make_deliver(name), scratch)
            sources.append(fs)
            tasks.append(asyncio.create_task(fs.run()))
        else:
            fwd = ForwardSource(name, cfg, make_deliver(name))
            try:
                await fwd.start()
            except OSError as exc:
                for s in sources:
                    await s.stop()
                for t in tasks:
                    t.cancel()
                shutil.rmtree(scratch, ignore_errors=True)
                raise StartupError(f"sources.{name}.address: {describe_bind_error(cfg.address, exc)}") from None
            sources.append(fwd)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    try:
        await done.wait()
    finally:
        for s in sources:
            await s.stop()
        for t in tasks:
            t.cancel()
        shutil.rmtree(scratch, ignore_errors=True)
