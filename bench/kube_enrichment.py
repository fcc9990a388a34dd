"""Cost of Kubernetes API metadata in the file source, per event and per cache change.

Reads N CRI lines of one kubelet-named file with the file source in process (deliver is a no-op),
with path metadata only, with API metadata of a known pod (a stand-in cache), and with the pod
unknown (every event flagged ``kubernetes_enrichment: missing``); prints CPU µs per event of each and
the difference. Then times one refresh of F files' metadata after a cache change.

    python bench/kube_enrichment.py --events 200000 --files 500
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import MappingProxyType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._records import cri_lines
from shipper.event import Event
from shipper.kube import NamespaceInfo, PodInfo
from shipper.sources.file.config import FileSourceConfig
from shipper.sources.file.kubernetes import PodMetadataTracker
from shipper.sources.file.source import FileSource

NS, POD, CONTAINER = "shop", "api-7d9f-x2x4k", "backend"


class StandInCache:
    """The reading side of KubeMetadataCache over fixed objects."""

    def __init__(self, known: bool) -> None:
        labels = {f"label-{i}.example.com/key": f"value-{i}" for i in range(10)}
        self.pods = {(NS, POD): PodInfo("uid-1", NS, POD, "node-a", MappingProxyType(labels),
                                        MappingProxyType({"team.io/owner": "alice"}),
                                        MappingProxyType({CONTAINER: "reg/api:1.2"}), "Deployment", "api", False)}
        if not known:
            self.pods = {}
        self.namespaces = {NS: NamespaceInfo(NS, MappingProxyType({"team": "payments"}), MappingProxyType({}))}
        self.generation = 1
        self.synced = True

    def pod(self, namespace: str, name: str) -> PodInfo | None:
        return self.pods.get((namespace, name))

    def namespace(self, name: str) -> NamespaceInfo | None:
        return self.namespaces.get(name)


def config(logs: Path, api: bool) -> FileSourceConfig:
    raw: dict[str, Any] = {"type": "file", "include": [f"{logs}/*.log"], "format": "cri",
                           "glob_interval_secs": 0.05, "poll_interval_secs": 0.01}
    if api:
        raw["kubernetes_api"] = {"node_name": "node-a"}
    return FileSourceConfig.model_validate(raw)


async def read_all(logs: Path, data: Path, events: int, mode: str) -> float:
    """CPU seconds the file source spends reading ``events`` lines."""
    seen = 0

    async def deliver(batch: list[Event]) -> None:
        nonlocal seen
        seen += len(batch)

    cache = None if mode == "path" else StandInCache(known=mode == "api")
    src = FileSource(f"bench-{mode}", config(logs, mode != "path"), deliver, data, cache)
    start = time.process_time()
    task = asyncio.create_task(src.run())
    while seen < events:
        await asyncio.sleep(0.005)
    cpu = time.process_time() - start
    await src.stop()
    await task
    src.close()
    return cpu


def refresh_cost(files: int) -> float:
    """Seconds for one refresh of ``files`` files' metadata after the cache changed."""
    cache = StandInCache(known=True)
    for i in range(files):
        cache.pods[(NS, f"pod-{i}")] = cache.pods[(NS, POD)]
    api = config(Path("/nonexistent"), True).kubernetes_api
    assert api is not None
    tracker = PodMetadataTracker("bench", api, cache)
    for i in range(files):
        tracker.track(f"0:{i}", {"namespace": NS, "pod_name": f"pod-{i}", "container_name": CONTAINER})
    old = cache.pods[(NS, POD)]
    cache.pods = {k: PodInfo(old.uid, old.namespace, k[1], old.node_name, MappingProxyType({"v": "2"}),
                             old.annotations, old.containers, old.owner_kind, old.owner_name, False)
                  for k in cache.pods}
    cache.generation += 1
    start = time.perf_counter()
    changed = tracker.changed()
    took = time.perf_counter() - start
    assert len(changed) == files
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--files", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp) / "containers"
        logs.mkdir()
        with (logs / f"{POD}_{NS}_{CONTAINER}-{'a' * 64}.log").open("wb") as f:
            for line in cri_lines(args.events):
                f.write(line)
        results: dict[str, list[float]] = {"path": [], "api": [], "missing": []}
        for r in range(args.repeat):
            for mode in results:
                cpu = asyncio.run(read_all(logs, Path(tmp) / f"data-{mode}-{r}", args.events, mode))
                results[mode].append(cpu / args.events * 1e6)
    med = {m: statistics.median(v) for m, v in results.items()}
    print(f"events={args.events} repeat={args.repeat} (CPU µs per event, median; all runs in brackets)")
    for mode, runs in results.items():
        print(f"  {mode:8s} {med[mode]:6.2f} [{' '.join(f'{x:.2f}' for x in runs)}]")
    print(f"  api - path     {med['api'] - med['path']:+.2f} µs/event")
    print(f"  missing - path {med['missing'] - med['path']:+.2f} µs/event")
    took = statistics.median(refresh_cost(args.files) for _ in range(args.repeat))
    print(f"refresh after a cache change: {took * 1e3:.2f} ms for {args.files} files "
          f"({took / args.files * 1e6:.1f} µs/file)")


if __name__ == "__main__":
    main()
