"""Helpers of the jobs' integration tests: realistic events over several days, shipped by the sinks."""

from __future__ import annotations

import asyncio
import random
import time
import zlib
from collections.abc import Iterable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import click
import httpx
import orjson
from click.testing import CliRunner, Result

from shipper.archive.days import day_bounds_ns, day_of_ns
from shipper.event import Event
from shipper.jobs import cli as jobs_cli
from shipper.sinks._common.base import Sink
from shipper.sinks._common.config import SinkConfigBase
from shipper.sinks._common.dead_letter import DeadLetterWriter
from shipper.sinks._common.delivery import Delivery
from tests.factories import event, iso_ms

LEVELS = ["debug", "info", "info", "info", "warning", "error"]


def days_ago(n: int) -> date:
    """The UTC day ``n`` days before today."""
    return day_of_ns(time.time_ns()) - timedelta(days=n)


def make_events(n: int, days: list[date], run: str, seed: int = 1, ties: int = 0) -> list[Event]:
    """``n`` logging_config-shaped events spread over ``days`` (oldest first), plus ``ties`` events that
    share one timestamp in the middle of the second day. Ids are the file source's (file + offset)."""
    rnd = random.Random(seed)
    out = []
    span = len(days) * 86_400 * 10**9
    start = day_bounds_ns(days[0])[0]
    for i in range(n):
        ts = start + i * (span // n) + rnd.randrange(10**6) * 1000
        level = rnd.choice(LEVELS)
        record = {"timestamp": "", "level": level, "logger": "app.orders", "message": f"order {i} {run}",
                  "request_id": f"req-{rnd.randrange(10**9):09d}", "trace_id": f"{rnd.getrandbits(64):016x}",
                  "service": rnd.choice(["api", "worker"]), "environment": "test", "run": run}
        out.append(_event(record, ts, i))
    tie_ts = day_bounds_ns(days[min(1, len(days) - 1)])[0] + 12 * 3600 * 10**9 + 123_000_000
    for j in range(ties):
        record = {"timestamp": "", "level": "tie", "logger": "app.burst", "message": f"burst {j} {run}",
                  "service": "api", "environment": "test", "run": run}
        out.append(_event(record, tie_ts, n + j))
    return sorted(out, key=lambda e: e.ts_ns)


def _event(record: dict[str, Any], ts: int, n: int) -> Event:
    record["timestamp"] = iso_ms(ts)
    meta = {"id": f"c0ffee:{n * 512}", "source": "app",
            "kubernetes": {"namespace": "prod", "pod_name": f"{record['service']}-{n % 3}", "container_name": "app"}}
    return event(raw=orjson.dumps(record).decode(), ts_ns=ts, meta=meta)


def on_day(events: Iterable[Event], day: date) -> list[Event]:
    return [e for e in events if day_of_ns(e.ts_ns) == day]


def ship(sink: Sink, config: SinkConfigBase, events: list[Event], workdir: Path) -> None:
    """Deliver through the shared delivery (retries, dead letters), batch by batch, in time order;
    nothing may be refused."""

    async def go() -> None:
        await sink.start()
        delivery = Delivery(sink, config.request.retry, DeadLetterWriter(workdir, sink.name))
        report = await delivery.deliver_all(events, config.batch)
        await sink.close()
        assert not delivery.dead.path.exists(), delivery.dead.path.read_text()[:2000]
        assert report.accepted == len(events), report

    asyncio.run(go())


def cli(*args: str) -> Result:
    group = click.Group("ecvi-logs")
    for command in jobs_cli.COMMANDS:
        group.add_command(command)
    return CliRunner().invoke(group, list(args), catch_exceptions=False)


def read_archive(root: Path) -> list[dict[str, Any]]:
    """Every archived line under a file:// archive root."""
    return [orjson.loads(line) for path in sorted(root.rglob("*.ndjson.gz"))
            for line in zlib.decompress(path.read_bytes(), 47).splitlines()]


def loki_flush(url: str) -> None:
    """Write the ingesters' chunks to the store: queries over ranges older than
    ``query_ingesters_within`` (3h by default) read only the store, so backdated entries are
    invisible until then."""
    httpx.post(f"{url}/flush", timeout=30).raise_for_status()
    time.sleep(1.0)
