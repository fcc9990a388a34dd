"""Elasticsearch (the integ-test distribution, single node, security off) for the integration tests.

The distribution comes from `tests/services/fetch_elasticsearch.sh` (`$ECVI_CACHE_DIR/elasticsearch-<v>`,
or `ES_HOME`).  Elasticsearch refuses to run as root: as root it runs as the system user `ecvi-es`
(created when missing) from a world-readable copy of the distribution under /var/tmp/ecvi-logs.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import elasticsearch
import httpx

from tests.services._process import ServiceError, ServiceProcess, free_port
from tests.services._service import Service, cache_dir

DEFAULT_VERSION = "8.19.21"
SERVICE_USER = "ecvi-es"
STAGING_DIR = Path("/var/tmp/ecvi-logs")
FETCH_SCRIPT = Path(__file__).with_name("fetch_elasticsearch.sh")


def es_home() -> Path:
    if os.environ.get("ES_HOME"):
        home = Path(os.environ["ES_HOME"])
    else:
        version = os.environ.get("ES_VERSION", DEFAULT_VERSION)
        home = cache_dir() / f"elasticsearch-{version}"
        if not (home / "bin" / "elasticsearch").exists():
            fetch = subprocess.run(
                ["bash", str(FETCH_SCRIPT), version], capture_output=True, text=True, timeout=900, check=False
            )
            if fetch.returncode != 0:
                raise ServiceError(f"{FETCH_SCRIPT} failed:\n{fetch.stderr[-3000:]}")
    if not (home / "bin" / "elasticsearch").exists():
        raise ServiceError(f"no Elasticsearch distribution at {home}")
    return home


def java_home() -> str:
    if os.environ.get("ES_JAVA_HOME"):
        return os.environ["ES_JAVA_HOME"]
    java = shutil.which("java")
    if java is None:
        raise ServiceError("no `java` on PATH and ES_JAVA_HOME is not set (Elasticsearch 8 needs Java 17+)")
    return str(Path(os.path.realpath(java)).parents[1])


def service_user() -> pwd.struct_passwd | None:
    """The user to run as: None when not root, else `ecvi-es` (created if needed)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        pass
    made = subprocess.run(
        [
            "useradd",
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            SERVICE_USER,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        raise ServiceError(f"cannot create user {SERVICE_USER}: {made.stderr.strip()}") from None


def _world_readable(path: Path) -> bool:
    return all(p.stat().st_mode & stat.S_IXOTH for p in [path, *path.parents])


def readable_home(home: Path) -> Path:
    """`home` if every user can reach it, else a world-readable copy under STAGING_DIR."""
    if _world_readable(home):
        return home
    staged = STAGING_DIR / home.name
    if (staged / "bin" / "elasticsearch").exists():
        return staged
    STAGING_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    STAGING_DIR.chmod(0o755)
    part = STAGING_DIR / f".{home.name}.{os.getpid()}"
    shutil.copytree(home, part, symlinks=True)
    for dirpath, _dirs, files in os.walk(part):
        os.chmod(dirpath, 0o755)
        for name in files:
            file = Path(dirpath, name)
            if not file.is_symlink():
                file.chmod(file.stat().st_mode | 0o444 | (0o111 if file.stat().st_mode & 0o100 else 0))
    try:
        part.rename(staged)
    except OSError:  # staged concurrently by another process
        shutil.rmtree(part, ignore_errors=True)
    return staged


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)


class Elasticsearch(Service):
    name = "elasticsearch"
    ready_timeout = 180.0

    def _prepare(self, workdir: Path) -> ServiceProcess:
        home = es_home()
        user = service_user()
        if user is not None:
            home = readable_home(home)
        http_port, transport_port = free_port(), free_port()
        conf, data, logs, tmp = (workdir / d for d in ("config", "data", "logs", "tmp"))
        shutil.copytree(home / "config", conf)  # ES writes its keystore there
        for d in (data, logs, tmp):
            d.mkdir()
        settings = {
            "cluster.name": "ecvi-test",
            "node.name": "ecvi-test-0",
            "discovery.type": "single-node",
            "network.host": "127.0.0.1",
            "http.port": str(http_port),
            "transport.port": str(transport_port),
            "path.data": str(data),
            "path.logs": str(logs),
            "cluster.routing.allocation.disk.threshold_enabled": "false",
            "action.auto_create_index": "true",
        }
        if (home / "modules" / "x-pack-security").exists():
            settings["xpack.security.enabled"] = "false"
        argv = [str(home / "bin" / "elasticsearch")]
        for key, value in settings.items():
            argv += ["-E", f"{key}={value}"]
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": str(workdir),
            "ES_JAVA_HOME": java_home(),
            "ES_PATH_CONF": str(conf),
            "ES_TMPDIR": str(tmp),
            "ES_JAVA_OPTS": os.environ.get("ES_TEST_JAVA_OPTS", "-Xms512m -Xmx512m"),
        }
        if user is not None:
            _chown_tree(workdir, user.pw_uid, user.pw_gid)
        self.url = f"http://127.0.0.1:{http_port}"
        return ServiceProcess(
            self.name,
            argv,
            workdir / f"{self.name}.log",
            env=env,
            cwd=workdir,
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
        )

    def ready(self) -> bool:
        resp = httpx.get(
            f"{self.url}/_cluster/health", params={"wait_for_status": "yellow", "timeout": "2s"}, timeout=5
        )
        return resp.status_code == 200 and resp.json().get("status") in ("yellow", "green")

    def client(self, **kwargs: Any) -> elasticsearch.Elasticsearch:
        """An elasticsearch-py client for this server (close it, or use it as a context manager)."""
        kwargs.setdefault("request_timeout", 30)
        return elasticsearch.Elasticsearch(self.url, **kwargs)
