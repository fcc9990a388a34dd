"""CPU per event of each stage of the line-batch path, in process, on the benchmark's records.

    python bench/line_stages.py --events 100000 --rounds 5

Stages: the file source's read of a CRI file into line batches (tailer, ``batches=True``), the
disk buffer's encoding of them and back, the file sink's write of a batch, and the Loki sink's
push request built two ways from the same batches: straight from the columns (what ``send_lines``
does, ``shipper/sinks/loki/direct.py``) and through a light event per line, label grouping and the
event encoder (what it did before). Both requests are checked byte-identical. The collector runs as
in the shipper (start-up frozen, gen-0 threshold 10,000). Figures: µs per event, min and median.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._records import cri_lines
from shipper.lines import LineBatch, pack_items, unpack_items
from shipper.runner import settle_gc
from shipper.sinks.loki.config import LokiSinkConfig
from shipper.sinks.loki.sink import LokiSink
from shipper.sources.file.config import FileSourceConfig
from shipper.sources.file.tailer import Tailer, fingerprint


def _read(path: str, cfg: FileSourceConfig) -> list[Any]:
    fd = os.open(path, os.O_RDONLY)
    try:
        tailer = Tailer("app", path, fd, 1, 2, fingerprint(fd), 0, 0, cfg, "node", None, batches=True)
        items: list[Any] = []
        while tailer.read(items, 1 << 20):
            pass
        return items
    finally:
        os.close(fd)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=2000, help="lines per push request")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ecvi-stages-"))
    log = work / "app.log"
    log.write_bytes(b"".join(cri_lines(args.events)))
    cfg = FileSourceConfig.model_validate({"type": "file", "include": [str(log)], "format": "cri"})
    sink = LokiSink("loki", LokiSinkConfig.model_validate({
        "type": "loki", "inputs": ["app"], "endpoint": "http://loki.invalid",
        "labels": {"service": "{{ service }}", "level": "{{ level }}"}}), str(work))
    items = _read(str(log), cfg)
    assert all(type(it) is LineBatch for it in items), "every bench line should travel in a batch"
    packed = [pack_items([it]) for it in items]
    requests: list[LineBatch] = []
    for it in items:
        while len(it) > args.batch:
            head, it = it.split(args.batch)
            requests.append(head)
        requests.append(it)
    out = open(work / "out.ndjson", "wb")  # noqa: SIM115 (kept open across rounds)
    line_push = sink._line_push
    assert line_push is not None

    def by_events(b: LineBatch) -> bytes:
        return sink.encoder.encode(sink.labels.group(sink._views.views(b))).body

    assert all(line_push.request([b])[0].body == by_events(b) for b in requests[:5])
    stages: dict[str, Callable[[], object]] = {
        "source read (line batches)": lambda: _read(str(log), cfg),
        "buffer pack": lambda: [pack_items([it]) for it in items],
        "buffer unpack": lambda: [unpack_items(p) for p in packed],
        "file sink write": lambda: [out.write(it.data) for it in items],
        "loki request from columns": lambda: [line_push.request([b]) for b in requests],
        "loki request by events": lambda: [by_events(b) for b in requests],
    }
    settle_gc()
    runs: dict[str, list[float]] = {name: [] for name in stages}
    for _ in range(args.rounds):
        for name, stage in stages.items():
            t0 = time.process_time()
            stage()
            runs[name].append((time.process_time() - t0) / args.events * 1e6)
    out.close()
    gc.unfreeze()
    print(f"events={args.events} cores={os.cpu_count()} rounds={args.rounds}")
    for name, values in runs.items():
        print(f"  {name:28s} min {min(values):5.2f} µs/event, median {statistics.median(values):5.2f}")


if __name__ == "__main__":
    main()
