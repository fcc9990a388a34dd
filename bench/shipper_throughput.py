"""Shipper throughput: N realistic CRI records, file source -> a sink, measured from outside.

Runs ``ecvi-logs ship`` as a child process over a pre-written log file and reports events/s,
MiB/s, CPU-seconds of the shipper process per million events and its peak RSS (VmHWM).

    python bench/shipper_throughput.py --events 1000000 --target file
    python bench/shipper_throughput.py --events 1000000 --target capture   # Loki push to a local counter
    python bench/shipper_throughput.py --events 5000000 --backlog           # 2 GiB backlog, RSS bound
    python bench/shipper_throughput.py --events 200000 --target loki        # a real Loki (started, or --url)
    python bench/shipper_throughput.py --events 200000 --target elasticsearch
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._capture import CaptureServer
from bench._records import cri_lines

SINKS = {
    "file": 'out: {{type: file, inputs: [app], path: "{work}/out/out.ndjson", '
            "batch: {{max_events: 5000, max_bytes: 4194304}}, buffer: {{max_bytes: {buffer}}}}}",
    "capture": 'loki: {{type: loki, inputs: [app], endpoint: "{url}", healthcheck: false, '
               'labels: {{service: "{{{{ service }}}}", level: "{{{{ level }}}}"}}, '
               "batch: {{max_events: 2000, max_bytes: 1048576}}, buffer: {{max_bytes: {buffer}}}}}",
    "loki": 'loki: {{type: loki, inputs: [app], endpoint: "{url}", '
            'labels: {{service: "{{{{ service }}}}", level: "{{{{ level }}}}"}}, '
            "batch: {{max_events: 5000, max_bytes: 4194304}}, buffer: {{max_bytes: {buffer}}}}}",
    "elasticsearch": 'es: {{type: elasticsearch, inputs: [app], endpoint: "{url}", '
                     "batch: {{max_events: 5000, max_bytes: 8388608}}, request: {{concurrency: 2}}, "
                     "buffer: {{max_bytes: {buffer}}}}}",
}


def _proc_stats(pid: int) -> tuple[float, int]:
    """CPU seconds (user+sys) and peak RSS bytes of a live process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    hwm = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024
    return cpu, hwm


def _sent(api: str, sink: str) -> float:
    try:
        body = urllib.request.urlopen(f"http://{api}/metrics", timeout=2).read().decode()
    except OSError:
        return 0.0
    for line in body.splitlines():
        if line.startswith("ecvi_shipper_events_sent_total") and f'sink="{sink}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def write_log(path: Path, events: int, per_ms: int = 1) -> int:
    size = 0
    with path.open("wb") as f:
        buf = []
        for line in cri_lines(events, per_ms=per_ms):
            buf.append(line)
            size += len(line)
            if len(buf) >= 10000:
                f.write(b"".join(buf))
                buf = []
        f.write(b"".join(buf))
    return size


_ROOT = Path(__file__).resolve().parent.parent


def byte_compile() -> None:
    """Byte-compile the project's modules (into their ``__pycache__``), as an installed wheel is
    (pip compiles on install). Without it, a checkout run with PYTHONDONTWRITEBYTECODE compiles
    every project module from source at each start."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j0",
                    *(str(_ROOT / p) for p in ("shipper", "logging_config", "pipelines"))],
                   check=True, stdout=subprocess.DEVNULL)


def run(target: str, events: int, url: str | None, work: Path, buffer_bytes: int,
        per_ms: int = 1, redact: bool = False, prefix: list[str] | None = None) -> dict[str, float]:
    """One shipper run over ``events`` records; ``prefix`` goes before its command (a profiler)."""
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    print(f"writing {events} records ...", file=sys.stderr)
    size = write_log(logs / "app.log", events, per_ms)
    capture = None
    if target == "capture":
        capture = CaptureServer()
        capture.start()
        url = capture.url
    sink_name = {"file": "out", "capture": "loki", "loki": "loki", "elasticsearch": "es"}[target]
    api = "127.0.0.1:9187"
    cfg = work / "shipper.yaml"
    cfg.write_text(
        f"data_dir: {work}/data\napi: {{address: {api}}}\n"
        f'sources:\n  app: {{type: file, include: ["{logs}/*.log"], format: cri}}\n'
        + ("transforms:\n  redact: {type: redact, inputs: [app]}\n" if redact else "")
        + f"sinks:\n  {SINKS[target].format(work=work, url=url, buffer=buffer_bytes)}\n"
        .replace("inputs: [app]", "inputs: [redact]" if redact else "inputs: [app]")
    )
    proc = subprocess.Popen(
        [*(prefix or []), sys.executable, "-m", "shipper.cli", "ship", "--config", str(cfg), "--log-level", "WARNING"],
        stdin=subprocess.DEVNULL,
    )
    try:
        start = time.perf_counter()
        cpu = rss = 0.0
        sent = 0.0
        while sent < events:
            time.sleep(0.2)
            if proc.poll() is not None:
                raise SystemExit(f"shipper exited with {proc.returncode}")
            cpu, hwm = _proc_stats(proc.pid)
            rss = max(rss, hwm)
            sent = _sent(api, sink_name)
            if time.perf_counter() - start > 1800:
                raise SystemExit(f"timed out with {sent} of {events} sent")
        wall = time.perf_counter() - start
    finally:
        proc.terminate()
        proc.wait(60)
        if capture:
            capture.stop()
    result = {
        "events": events,
        "bytes": size,
        "wall_s": wall,
        "events_per_s": events / wall,
        "mib_per_s": size / wall / 2**20,
        "cpu_s": cpu,
        "cpu_s_per_million": cpu / events * 1e6,
        "events_per_cpu_s": events / cpu if cpu else 0.0,
        "peak_rss_mib": rss / 2**20,
    }
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=500_000)
    ap.add_argument("--target", choices=sorted(SINKS), default="file")
    ap.add_argument("--url", help="backend URL for --target loki / elasticsearch (default: start one locally)")
    ap.add_argument("--backlog", action="store_true",
                    help="2 GiB of backlog: the sink's buffer is bounded at 256 MiB, RSS must stay flat")
    ap.add_argument("--buffer-bytes", type=int, default=256 * 1024 * 1024)
    ap.add_argument("--records-per-ms", type=int, default=1,
                    help="consecutive records sharing one millisecond (1: each its own, as real logs)")
    ap.add_argument("--redact", action="store_true",
                    help="route the sink through a redact transform, as the deployed config does")
    ap.add_argument("--from-source", action="store_true",
                    help="do not byte-compile the project's modules first (start-up then compiles them)")
    ap.add_argument("--repeat", type=int, default=1, help="runs; the figures printed are each one's median")
    args = ap.parse_args()
    events = args.events
    if args.backlog:
        events = max(events, 2 * 1024**3 // 380)
    work = Path(tempfile.mkdtemp(prefix="ecvi-bench-"))
    service = None
    url = args.url
    if args.target in ("loki", "elasticsearch") and not url:
        # No --url: start the same real server the integration tests use (cached binary / zip).
        from tests.services.es import Elasticsearch
        from tests.services.loki import Loki

        service = Loki() if args.target == "loki" else Elasticsearch()
        service.start()
        url = service.url
        print(f"started {args.target} at {url}", file=sys.stderr)
    runs = []
    try:
        if not args.from_source:
            byte_compile()
        for i in range(args.repeat):
            runs.append(run(args.target, events, url, work / str(i), args.buffer_bytes, args.records_per_ms,
                            args.redact))
            shutil.rmtree(work / str(i), ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if service is not None:
            service.close()
    r = runs[0]
    print(f"target={args.target} cores={os.cpu_count()} events={r['events']:.0f} "
          f"input={r['bytes'] / 2**20:.0f}MiB runs={len(runs)} (median; all runs in brackets)")
    for k in ("wall_s", "events_per_s", "mib_per_s", "cpu_s", "cpu_s_per_million", "events_per_cpu_s",
              "peak_rss_mib"):
        values = [x[k] for x in runs]
        each = " [" + " ".join(f"{v:.1f}" for v in values) + "]" if len(runs) > 1 else ""
        print(f"  {k:20s} {statistics.median(values):12.1f}{each}")


if __name__ == "__main__":
    main()
