"""Grafana Loki (single binary, filesystem storage) for the integration tests.

The binary comes from `tests/services/build_loki.sh` (cached as `$ECVI_CACHE_DIR/loki-<version>`);
`LOKI_BINARY` names another one.  The configuration is `loki-config.yaml` next to this file.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from string import Template
from typing import Any

import httpx

from tests.services._process import ServiceError, ServiceProcess, free_port
from tests.services._service import Service, cache_dir

DEFAULT_VERSION = "v3.7.6"
CONFIG_TEMPLATE = Path(__file__).with_name("loki-config.yaml")
BUILD_SCRIPT = Path(__file__).with_name("build_loki.sh")


def find_binary() -> Path:
    explicit = os.environ.get("LOKI_BINARY")
    path = Path(explicit) if explicit else cache_dir() / f"loki-{os.environ.get('LOKI_VERSION', DEFAULT_VERSION)}"
    if not os.access(path, os.X_OK):
        raise ServiceError(
            f"Loki binary {path} is missing: build it first with `bash {BUILD_SCRIPT}` "
            "(a cold build takes about 15 minutes)"
        )
    return path


def render_config(*, data_dir: Path, http_port: int, grpc_port: int, auth_enabled: bool = False) -> str:
    return Template(CONFIG_TEMPLATE.read_text()).substitute(
        auth_enabled="true" if auth_enabled else "false",
        data_dir=str(data_dir),
        http_port=http_port,
        grpc_port=grpc_port,
        memberlist_port=free_port(),
    )


class Loki(Service):
    """A Loki server; with `auth_enabled=True` every request carries `X-Scope-OrgID: <tenant>`."""

    name = "loki"
    ready_timeout = 120.0

    def __init__(self, *, url: str | None = None, auth_enabled: bool = False, tenant: str = "ecvi-test"):
        super().__init__(url=url)
        self.auth_enabled = auth_enabled
        self.tenant = tenant

    def _prepare(self, workdir: Path) -> ServiceProcess:
        binary = find_binary()
        http_port, grpc_port = free_port(), free_port()
        config = workdir / "loki.yaml"
        config.write_text(
            render_config(
                data_dir=workdir / "data",
                http_port=http_port,
                grpc_port=grpc_port,
                auth_enabled=self.auth_enabled,
            )
        )
        check = subprocess.run(
            [str(binary), "-verify-config", f"-config.file={config}"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check.returncode != 0:
            raise ServiceError(f"loki -verify-config -config.file={config} failed:\n{check.stdout}{check.stderr}")
        self.url = f"http://127.0.0.1:{http_port}"
        argv = [str(binary), f"-config.file={config}"]
        return ServiceProcess(self.name, argv, workdir / f"{self.name}.log", cwd=workdir)

    def ready(self) -> bool:
        return httpx.get(f"{self.url}/ready", timeout=2).status_code == 200

    # -- HTTP API helpers ---------------------------------------------------------------------------
    def headers(self, tenant: str | None = None) -> dict[str, str]:
        return {"X-Scope-OrgID": tenant or self.tenant}

    def push(self, streams: list[dict[str, Any]], *, tenant: str | None = None) -> None:
        """JSON push: streams are `{"stream": {labels}, "values": [[ts_ns_str, line(, metadata)]]}`."""
        resp = httpx.post(
            f"{self.url}/loki/api/v1/push",
            json={"streams": streams},
            headers=self.headers(tenant),
            timeout=10,
        )
        resp.raise_for_status()

    def query_range(
        self,
        query: str,
        start_ns: int,
        end_ns: int,
        limit: int = 100,
        *,
        direction: str = "forward",
        tenant: str | None = None,
    ) -> list[dict[str, Any]]:
        """`data.result` of GET /loki/api/v1/query_range (a list of streams or of matrix series)."""
        resp = httpx.get(
            f"{self.url}/loki/api/v1/query_range",
            params={
                "query": query,
                "start": str(start_ns),
                "end": str(end_ns),
                "limit": str(limit),
                "direction": direction,
            },
            headers=self.headers(tenant),
            timeout=30,
        )
        resp.raise_for_status()
        return list(resp.json()["data"]["result"])

    def entries(
        self, query: str, start_ns: int, end_ns: int, limit: int = 1000, *, tenant: str | None = None
    ) -> list[tuple[int, str, dict[str, str]]]:
        """(timestamp_ns, line, labels) of every entry, oldest first; labels include structured metadata."""
        out = [
            (int(value[0]), value[1], dict(stream["stream"]))
            for stream in self.query_range(query, start_ns, end_ns, limit, tenant=tenant)
            for value in stream["values"]
        ]
        return sorted(out, key=lambda entry: entry[0])

    def wait_for_entries(
        self,
        query: str,
        count: int,
        start_ns: int,
        end_ns: int | None = None,
        *,
        timeout: float = 30,
        tenant: str | None = None,
    ) -> list[tuple[int, str, dict[str, str]]]:
        """Poll `entries()` until at least `count` are there (returns what it has at `timeout`)."""
        deadline = time.monotonic() + timeout
        while True:
            end = end_ns if end_ns is not None else time.time_ns() + 60_000_000_000
            found = self.entries(query, start_ns, end, max(count, 1000), tenant=tenant)
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.5)
