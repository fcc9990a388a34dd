"""moto in server mode: CloudWatch Logs and S3 on 127.0.0.1 for the integration tests.

moto keeps its state in memory, so `stop()`/`start()` gives the same endpoint with empty state.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import boto3
import httpx
from botocore.config import Config

from tests.services._process import ServiceProcess, free_port
from tests.services._service import Service

REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


class Moto(Service):
    name = "moto"
    ready_timeout = 60.0

    def _prepare(self, workdir: Path) -> ServiceProcess:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        return ServiceProcess(self.name, argv, workdir / f"{self.name}.log", cwd=workdir)

    def ready(self) -> bool:
        return httpx.get(f"{self.url}/", timeout=2).status_code < 500

    def env(self) -> dict[str, str]:
        """Environment for code that builds its own AWS clients (apply with monkeypatch.setenv)."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"],
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }

    def client(self, service_name: str, **kwargs: Any) -> Any:
        """A boto3 client for `service_name` ("logs", "s3", ...) talking to this endpoint."""
        if service_name == "s3":
            kwargs.setdefault("config", Config(s3={"addressing_style": "path"}))
        kwargs.setdefault("region_name", REGION)
        return boto3.client(service_name, endpoint_url=self.url, **CREDENTIALS, **kwargs)  # type: ignore[call-overload]

    def reset(self) -> None:
        """Forget all state (moto only)."""
        httpx.post(f"{self.url}/moto-api/reset", timeout=10).raise_for_status()
