"""Prometheus server for the integration tests: scrapes test processes, evaluates alert rules.

The binary is `cmd/prometheus` of the same Go module release as promtool, built and cached by
`tests/tools/build_go_tool.sh prometheus` (`$ECVI_CACHE_DIR/prometheus-<version>`);
`PROMETHEUS_BINARY` names another one. It starts with nothing to scrape; a test gives it its
targets and rules with `configure()`, which reloads the server (`--web.enable-lifecycle`).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.services._process import ServiceError, ServiceProcess, free_port
from tests.services._service import Service, cache_dir

DEFAULT_VERSION = os.environ.get("PROMTOOL_VERSION", "v0.316.0")
BUILD_SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "build_go_tool.sh"


def find_binary() -> Path:
    """The Prometheus binary, built on first use (about two minutes, once)."""
    explicit = os.environ.get("PROMETHEUS_BINARY")
    if explicit:
        return Path(explicit)
    version = os.environ.get("PROMETHEUS_VERSION", DEFAULT_VERSION)
    path = cache_dir() / f"prometheus-{version}"
    if os.access(path, os.X_OK):
        return path
    try:
        proc = subprocess.run(["bash", str(BUILD_SCRIPT), "prometheus"], capture_output=True, text=True,
                              timeout=3000, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServiceError(f"building Prometheus failed: {exc}") from exc
    if proc.returncode != 0:
        raise ServiceError(f"`bash {BUILD_SCRIPT} prometheus` failed:\n{proc.stderr[-2000:]}")
    return Path(proc.stdout.strip().splitlines()[-1])


class Prometheus(Service):
    """A Prometheus server on 127.0.0.1 with its TSDB in the work dir."""

    name = "prometheus"
    ready_timeout = 60.0

    def _prepare(self, workdir: Path) -> ServiceProcess:
        binary = find_binary()
        port = free_port()
        self.config_path = workdir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump({"global": {"scrape_interval": "15s"}}))
        self.url = f"http://127.0.0.1:{port}"
        argv = [str(binary), f"--config.file={self.config_path}", f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle", "--log.level=warn"]
        return ServiceProcess(self.name, argv, workdir / f"{self.name}.log", cwd=workdir)

    def ready(self) -> bool:
        return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200

    def version(self) -> str:
        resp = httpx.get(f"{self.url}/api/v1/status/buildinfo", timeout=10)
        resp.raise_for_status()
        return str(resp.json()["data"]["version"])

    def configure(self, scrape_configs: list[dict[str, Any]], rules: dict[str, Any] | None = None, *,
                  scrape_interval: str = "1s", evaluation_interval: str = "1s") -> None:
        """Replace the scrape targets and rule groups (`{"groups": [...]}`), then reload."""
        assert self.workdir is not None, "an external Prometheus cannot be configured"
        config: dict[str, Any] = {
            "global": {"scrape_interval": scrape_interval, "scrape_timeout": scrape_interval,
                       "evaluation_interval": evaluation_interval},
            "scrape_configs": scrape_configs,
        }
        if rules is not None:
            rules_path = self.workdir / "rules.yaml"
            rules_path.write_text(yaml.safe_dump(rules, sort_keys=False))
            config["rule_files"] = [str(rules_path)]
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        resp = httpx.post(f"{self.url}/-/reload", timeout=30)
        if resp.status_code != 200:
            raise ServiceError(f"prometheus reload failed ({resp.status_code}): {resp.text}\n{self.describe_log()}")

    # -- HTTP API helpers ---------------------------------------------------------------------------
    def query(self, expr: str) -> list[dict[str, Any]]:
        """`data.result` of an instant query (a vector's series)."""
        resp = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=30)
        resp.raise_for_status()
        return list(resp.json()["data"]["result"])

    def alerts(self) -> list[dict[str, Any]]:
        """The pending and firing alerts (`/api/v1/alerts`)."""
        resp = httpx.get(f"{self.url}/api/v1/alerts", timeout=10)
        resp.raise_for_status()
        return list(resp.json()["data"]["alerts"])

    def targets(self) -> list[dict[str, Any]]:
        resp = httpx.get(f"{self.url}/api/v1/targets", params={"state": "active"}, timeout=10)
        resp.raise_for_status()
        return list(resp.json()["data"]["activeTargets"])

    def wait_for_targets_up(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            targets = self.targets()
            if len(targets) >= count and all(t["health"] == "up" for t in targets):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"targets not up after {timeout:.0f}s: "
                                     f"{[(t['scrapeUrl'], t['health'], t['lastError']) for t in targets]}")
            time.sleep(0.5)
