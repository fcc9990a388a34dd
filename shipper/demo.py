"""``ecvi-logs demo`` (``make run``): a demo backend logging through logging_config, shipped to ./var/out."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from shipper.config import parse_config
from shipper.errors import StartupError
from shipper.logs import setup_logging

DEMO_CONFIG = """\
data_dir: {work}/shipper
api: {{address: {api}}}
shutdown_timeout_secs: 5
sources:
  app: {{type: file, include: ["{work}/app/*.log"], format: json, read_from: beginning}}
sinks:
  out: {{type: file, inputs: [app], path: "{work}/out/%Y-%m-%d.ndjson"}}
"""


def run_demo(workdir: Path, api_address: str) -> None:
    """Start the demo backend as a child process, then ship its log until Ctrl-C."""
    from shipper.runner import run_shipper

    work = workdir.resolve()
    (work / "app").mkdir(parents=True, exist_ok=True)
    config = parse_config(DEMO_CONFIG.format(work=work, api=api_address), "demo config")
    (work / "demo-shipper.yaml").write_text(DEMO_CONFIG.format(work=work, api=api_address))
    log_path = work / "app" / "backend.log"
    backend = subprocess.Popen(
        [sys.executable, "-m", "shipper.demo_backend", str(log_path)], stdin=subprocess.DEVNULL
    )
    print(
        f"demo backend (pid {backend.pid}) logs JSON to {log_path}\n"
        f"shipper config: {work / 'demo-shipper.yaml'}\n"
        f"shipped lines:  {work / 'out'}/<date>.ndjson   (tail -f it)\n"
        f"metrics:        http://{api_address}/metrics   health: /health, /ready\n"
        "stop with Ctrl-C",
        flush=True,
    )
    setup_logging("INFO")
    try:
        asyncio.run(run_shipper(config))
    except KeyboardInterrupt:
        pass
    except StartupError as exc:  # e.g. --api on a port in use: one line, not a traceback
        print(f"ecvi-logs demo: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    finally:
        backend.terminate()
        backend.wait(5)
