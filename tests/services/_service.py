"""Base class of a real test service: a process on 127.0.0.1 with its own work dir, or an external URL."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from tests.services._process import ServiceError, ServiceProcess, tail


def cache_dir() -> Path:
    """Where the service binaries are cached (outside the repository)."""
    return Path(os.environ.get("ECVI_CACHE_DIR") or Path.home() / ".cache" / "ecvi-logs")


class Service:
    """A server the integration tests talk to.

    Started here (`url=None`): data and log live in `workdir`; `stop()`/`start()` restart it on the
    same port with the same data.  External (`url` given): nothing is started and `stop()` skips.
    """

    name = "service"
    ready_timeout = 60.0
    external_timeout = 30.0

    def __init__(self, *, url: str | None = None) -> None:
        self.external = bool(url)
        self.url = (url or "").rstrip("/")
        self.workdir = Path(tempfile.mkdtemp(prefix=f"ecvi-{self.name}-")) if not self.external else None
        self.log_path = self.workdir / f"{self.name}.log" if self.workdir else None
        self.process: ServiceProcess | None = None
        self.start_seconds: list[float] = []

    # -- to implement -------------------------------------------------------------------------------
    def _prepare(self, workdir: Path) -> ServiceProcess:
        """One-time set-up (ports, config, dirs); returns the process to run. Sets `self.url`."""
        raise NotImplementedError

    def ready(self) -> bool:
        """True once the server answers its readiness probe."""
        raise NotImplementedError

    # -- lifecycle ----------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.external or (self.process is not None and self.process.running)

    def start(self) -> float:
        """Start (or restart) the server and wait until it is ready; returns the seconds it took."""
        began = time.monotonic()
        if self.workdir is None:
            while not self._probe():
                if time.monotonic() - began > self.external_timeout:
                    raise ServiceError(f"{self.name} at {self.url} does not answer")
                time.sleep(0.5)
            return time.monotonic() - began
        if self.process is None:
            try:
                self.process = self._prepare(self.workdir)
            except (OSError, subprocess.SubprocessError) as exc:
                raise ServiceError(f"{self.name}: set-up failed: {exc!r}") from exc
        if self.process.running:
            return 0.0
        try:
            self.process.start()
            self.process.wait_until(self.ready, self.ready_timeout)
        except ServiceError as exc:
            self.process.stop(timeout=10)
            raise ServiceError(f"{exc}\n{self.describe_log()}") from None
        took = time.monotonic() - began
        self.start_seconds.append(took)
        return took

    def stop(self, *, kill: bool = False, timeout: float = 30) -> None:
        """Stop the server (SIGTERM; SIGKILL with `kill=True`), keeping its port and data."""
        if self.external:
            pytest.skip(f"{self.name} is an external server ({self.url}); it cannot be stopped")
        if self.process is not None:
            self.process.stop(timeout=timeout, kill=kill)

    def restart(self) -> float:
        self.stop()
        return self.start()

    def close(self, *, keep: bool = False) -> None:
        """Stop for good; remove the work dir unless `keep`."""
        if self.process is not None:
            self.process.stop()
        if not keep and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def describe_log(self) -> str:
        if self.log_path is None:
            return ""
        return f"log: {self.log_path}\n--- last lines ---\n{tail(self.log_path)}"

    def _probe(self) -> bool:
        try:
            return self.ready()
        except (httpx.HTTPError, OSError):
            return False

    def __repr__(self) -> str:
        where = "external" if self.external else f"workdir={self.workdir}"
        return f"<{type(self).__name__} {self.url or '(not started)'} {where}>"
