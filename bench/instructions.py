"""Instructions the shipper executes (valgrind's callgrind), a figure the machine's load does not move.

CPU seconds on a shared machine drift by tens of percent within an hour; the instruction count of
the same run is stable to about 1 % (what varies is how work interleaves in time). Two event counts
give the instructions per event (the difference between the runs, over the difference in events)
apart from the fixed cost of start-up and shutdown:

    python bench/instructions.py --events 20000,100000 --target capture

Each run is ~50x slower than without valgrind. The input and sinks are those of
``bench/shipper_throughput.py``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.shipper_throughput import SINKS, byte_compile, run


def instructions(target: str, events: int, work: Path) -> int:
    """Total instructions of one shipper run (``Ir`` of callgrind)."""
    out = work / "callgrind.out"
    run(target, events, None, work / "run", 1 << 30,
        prefix=["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "-q"])
    for line in out.read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise SystemExit(f"no totals in {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", default="20000,100000", help="one count, or two separated by a comma")
    ap.add_argument("--target", choices=[t for t in sorted(SINKS) if t in ("capture", "file")], default="capture")
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed")
    counts = [int(x) for x in args.events.split(",")]
    byte_compile()
    work = Path(tempfile.mkdtemp(prefix="ecvi-instr-"))
    try:
        totals = []
        for i, n in enumerate(counts):
            totals.append(instructions(args.target, n, work / str(i)))
            print(f"target={args.target} events={n} instructions={totals[-1] / 1e9:.3f}G", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if len(counts) == 2:
        per_event = (totals[1] - totals[0]) / (counts[1] - counts[0])
        fixed = totals[0] - per_event * counts[0]
        print(f"per event: {per_event:,.0f} instructions; fixed (start-up, shutdown): {fixed / 1e9:.2f}G "
              f"(cores={os.cpu_count()})")


if __name__ == "__main__":
    main()
