"""Loki push encoding per event, optionally against an older version of the encoder module.

    python bench/loki_encoder.py --events 20000 --rounds 7
    git show 7540e2d:shipper/sinks/loki/encoder.py > /tmp/encoder_before.py
    python bench/loki_encoder.py --baseline /tmp/encoder_before.py

Events are the benchmark's CRI records as a sink reads them from its buffer (record parsed on
demand), grouped by ``service`` and ``level``, with the default structured metadata; the figure is
CPU microseconds per event to serialise the ``PushRequest`` (min and median of the rounds).
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._records import cri_lines
from shipper.event import Event, pack_events, unpack_events
from shipper.sinks.loki.config import DEFAULT_METADATA
from shipper.sinks.loki.encoder import ProtobufEncoder, StructuredMetadata
from shipper.sinks.loki.labels import CardinalityGuard, LabelRenderer


def _load(path: str) -> ProtobufEncoder:
    spec = importlib.util.spec_from_file_location("baseline_encoder", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["baseline_encoder"] = module
    spec.loader.exec_module(module)
    return module.ProtobufEncoder(module.StructuredMetadata(list(DEFAULT_METADATA)))  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--baseline", help="an older shipper/sinks/loki/encoder.py to compare with")
    args = ap.parse_args()
    events = []
    for i, line in enumerate(cri_lines(args.events)):
        payload = line.split(b" ", 3)[3].rstrip(b"\n").decode()
        meta = {"source": "app", "file": "/var/log/containers/api-1_prod_api-0.log",
                "kubernetes": {"namespace": "prod", "pod_name": "api-1", "container_name": "api"},
                "offset": i * 390, "id": f"f:{i * 390}", "stream": "stdout"}
        events.append(Event(None, payload, 1_700_000_000_000_000_000 + i * 1_000_000, meta, True))
    events = unpack_events(pack_events(events))
    renderer = LabelRenderer({"service": "{{ service }}", "level": "{{ level }}"}, CardinalityGuard(500))
    batches = [renderer.group(events[i:i + args.batch]) for i in range(0, len(events), args.batch)]
    encoders = {"encoder": ProtobufEncoder(StructuredMetadata(list(DEFAULT_METADATA)))}
    if args.baseline:
        encoders["baseline"] = _load(args.baseline)
    runs: dict[str, list[float]] = {name: [] for name in encoders}
    gc.disable()
    for _ in range(args.rounds):
        for name, encoder in encoders.items():  # interleaved, so both see the same machine load
            t0 = time.process_time()
            for b in batches:
                encoder.serialize(b)
            runs[name].append((time.process_time() - t0) / len(events) * 1e6)
    if args.baseline:
        assert all(encoders["encoder"].serialize(b) == encoders["baseline"].serialize(b) for b in batches)
    for name, values in runs.items():
        print(f"{name:10s} min {min(values):.2f} µs/event, median {statistics.median(values):.2f}")


if __name__ == "__main__":
    main()
