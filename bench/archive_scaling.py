"""Archive export rate per worker, and its scaling from 1 to 4 workers, against a real Loki and Elasticsearch.

Ships N events of one day (two days ago) into S Loki streams and S Elasticsearch indices, then
archives the day to a directory with 1, 2 and 4 workers, two ways:

* threads: one ``archive run --concurrency W`` process;
* slices: W ``archive run --slices W`` processes side by side (what an Indexed Job's pods do),
  the last one merging the day's manifest.

Each run starts from an empty archive. Prints events/s (wall clock, all workers) per backend.

    python bench/archive_scaling.py --events 120000 --streams 16
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shipper.event import Event
from shipper.sinks.elasticsearch.config import ElasticsearchSinkConfig
from shipper.sinks.elasticsearch.sink import ElasticsearchSink
from shipper.sinks.loki.config import LokiSinkConfig
from shipper.sinks.loki.sink import LokiSink
from tests.services.es import Elasticsearch
from tests.services.loki import Loki
from tests.shipper.jobs._integration import days_ago, loki_flush, make_events, on_day, ship

CLI = [str(Path(sys.executable).with_name("ecvi-logs"))]


def _archive(flags: list[str], root: Path, day: str, workers: int, mode: str) -> tuple[float, int]:
    """Wall seconds and events archived for one configuration."""
    shutil.rmtree(root, ignore_errors=True)
    base = [*CLI, "archive", "run", *flags, "--day", day, "--to", root.as_uri(), "--days", "3653", "--json"]
    began = time.monotonic()
    if mode == "threads":
        out = subprocess.run([*base, "--concurrency", str(workers)], capture_output=True, text=True, check=True)
        docs = [json.loads(out.stdout)]
    else:
        procs = [subprocess.Popen([*base, "--slices", str(workers)], stdout=subprocess.PIPE, text=True,
                                  env={**os.environ, "JOB_COMPLETION_INDEX": str(i)}) for i in range(workers)]
        docs = [json.loads(p.communicate()[0]) for p in procs]
        if any(p.returncode for p in procs):
            raise SystemExit(f"a slice failed: {docs}")
    took = time.monotonic() - began
    manifest = json.loads((root / f"date={day}" / "manifest.json").read_text())
    assert all(d["ok"] for d in docs), docs
    return took, int(manifest["events"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=120_000)
    parser.add_argument("--streams", type=int, default=16, help="Loki streams and Elasticsearch indices.")
    parser.add_argument("--workers", default="1,2,4")
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    work = Path(tempfile.mkdtemp(prefix="ecvi-archive-bench-"))
    day = days_ago(2)
    run = os.urandom(4).hex()
    events = []
    for i, e in enumerate(make_events(args.events, [day], run)):
        record = json.loads(e.raw)
        record["shard"] = f"s{i % args.streams:02d}"
        events.append(Event(None, json.dumps(record), e.ts_ns, e.meta))
    loki, es = Loki(), Elasticsearch()
    loki.start()
    es.start()
    try:
        lcfg = LokiSinkConfig.model_validate({
            "type": "loki", "inputs": ["app"], "endpoint": loki.url, "healthcheck": False,
            "labels": {"shard": "{{ shard }}", "run": run}, "max_label_values": 10_000,
            "batch": {"max_events": 5000, "max_bytes": 4 * 1048576}})
        ship(LokiSink("loki", lcfg, str(work)), lcfg, events, work / "ship-loki")
        loki_flush(loki.url)
        index = f"ecvi-bench-{run}-{{{{ shard }}}}-%Y.%m.%d"
        ecfg = ElasticsearchSinkConfig.model_validate({
            "type": "elasticsearch", "inputs": ["app"], "endpoint": es.url, "index": index, "healthcheck": False,
            "max_indices": 10_000, "max_indices_per_pod": 10_000,
            "batch": {"max_events": 5000, "max_bytes": 8 * 1048576}})
        ship(ElasticsearchSink("es", ecfg, str(work)), ecfg, events, work / "ship-es")
        with es.client() as client:
            client.indices.refresh(index=f"ecvi-bench-{run}-*")
        backends = {
            "loki": ["--backend", "loki", "--loki-url", loki.url, "--selector", f'{{run="{run}"}}'],
            "elasticsearch": ["--backend", "elasticsearch", "--es-url", es.url, "--index", index],
        }
        expected = len(on_day(events, day))  # the last few may fall just past midnight
        print(f"{expected} events, {args.streams} streams/indices, one day; {os.cpu_count()} CPUs")
        for backend, flags in backends.items():
            for mode in ("threads", "slices"):
                base_rate = None
                for w in workers:
                    took, n = _archive(flags, work / "archive", day.isoformat(), w, mode)
                    assert n == expected, (backend, mode, w, n)
                    rate = n / took
                    base_rate = base_rate or rate
                    print(f"{backend:>13} {mode:>7} x{w}: {took:6.1f}s {rate:8.0f} events/s "
                          f"({rate / base_rate:.2f}x of 1)")
    finally:
        loki.stop()
        es.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
