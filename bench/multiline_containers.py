"""File tailer CPU cost per CRI line, with and without ``multiline``, in process (no sink, no buffer).

Two corpora: ``json`` (logging_config records, as bench/shipper_throughput.py writes them) and
``plain`` (a non-JSON container: text lines on stdout, a 6-line Python traceback on stderr every
20 lines). Reports CPU microseconds per line (best of ``--repeat``) and the events made.

    python bench/multiline_containers.py --lines 200000
    python bench/multiline_containers.py --lines 200000 --tree /path/to/other/checkout   # compare
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_TRACE = [
    "Traceback (most recent call last):",
    '  File "/app/app/services/verification.py", line 88, in verify',
    "    result = await registry.lookup(company.registration_number)",
    '  File "/app/app/clients/registry.py", line 41, in lookup',
    "    raise RegistryUnavailable(resp.status_code)",
    "app.clients.registry.RegistryUnavailable: 503",
]


def plain_lines(n: int) -> list[bytes]:
    out = []
    for i in range(n):
        ts = f"2025-01-01T00:{i // 60000 % 60:02d}:{i // 1000 % 60:02d}.{i % 1000:03d}417250Z"
        if i % 20 == 0:
            out += [f"{ts} stderr F ERROR verification {i} failed\n".encode()]
            out += [f"{ts} stderr F {line}\n".encode() for line in _TRACE]
        else:
            out.append(f"{ts} stdout F INFO company {i} verified in {i % 900} ms\n".encode())
    return out


def measure(path: Path, multiline: bool, repeat: int) -> tuple[float, int]:
    """Best CPU seconds to read ``path`` to its end (and flush), and the events made."""
    from shipper.sources.file.config import FileSourceConfig
    from shipper.sources.file.tailer import Tailer

    opts: dict[str, object] = {"type": "file", "include": [str(path)], "format": "cri"}
    if multiline:
        opts["multiline"] = {}
    cfg = FileSourceConfig.model_validate(opts)
    best, events = float("inf"), 0
    for _ in range(repeat):
        fd = os.open(path, os.O_RDONLY)
        st = os.fstat(fd)
        t = Tailer("bench", str(path), fd, st.st_dev, st.st_ino, 1, 0, 0, cfg, "node", None)
        out: list[object] = []
        start = time.process_time()
        while t.read(out, 1 << 20):  # type: ignore[arg-type]
            pass
        t.flush_group(out)  # type: ignore[arg-type]
        best = min(best, time.process_time() - start)
        events = len(out)
        t.close()
    return best, events


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--tree", type=Path, default=ROOT, help="checkout whose shipper package is measured")
    args = ap.parse_args()
    sys.path.insert(0, str(args.tree.resolve()))
    sys.path.insert(1, str(ROOT))
    from bench._records import cri_lines

    work = Path(tempfile.mkdtemp(prefix="ecvi-bench-ml-"))
    corpora = {"json": b"".join(cri_lines(args.lines)), "plain": b"".join(plain_lines(args.lines))}
    import shipper

    print(f"shipper from {Path(shipper.__file__).parent.parent}; best of {args.repeat}, CPU time")
    try:
        for name, data in corpora.items():
            path = work / f"{name}.log"
            path.write_bytes(data)
            lines = data.count(b"\n")
            for multiline in (False, True):
                secs, events = measure(path, multiline, args.repeat)
                print(f"  {name:5s} multiline={'set' if multiline else 'unset':5s} lines={lines:7d} "
                      f"events={events:7d} {secs / lines * 1e6:6.2f} us/line {lines / secs:9.0f} lines/s")
    finally:
        for p in work.iterdir():
            p.unlink()
        work.rmdir()


if __name__ == "__main__":
    main()
