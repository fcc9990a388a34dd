"""Find (building on first use) the validator tools of tests/tools for the tests.

A tool that cannot be had skips its test with the reason, except under ``CI=true``, where it
fails the test: CI must never pass by validating nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parent
REPO = TOOLS.parent.parent


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: a missing validator fails the run)", pytrace=False)
    pytest.skip(reason)


def _run_script(script: str | Path, *args: str) -> Path:
    try:
        proc = subprocess.run(["bash", str(TOOLS / script), *args], capture_output=True, text=True,
                              timeout=3000, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        _unavailable(f"{script} {' '.join(args)} did not finish: {exc}")
        raise AssertionError("unreachable") from exc
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        _unavailable(f"{script} {' '.join(args)} failed (exit {proc.returncode}):\n{tail}")
    return Path(proc.stdout.strip().splitlines()[-1])


def go_tool(name: str) -> Path:
    """Path of a tool of build_go_tool.sh: kubeconform, kustomize, promtool, prometheus, amtool, helm
    (``<NAME>_BINARY`` overrides)."""
    explicit = os.environ.get(f"{name.upper()}_BINARY")
    if explicit:
        return Path(explicit)
    if shutil.which("go") is None and not _cached(name):
        _unavailable(f"{name}: no Go toolchain to build it with and no cached binary")
    return _run_script("build_go_tool.sh", name)


def _cached(name: str) -> bool:
    cache = Path(os.environ.get("ECVI_CACHE_DIR", Path.home() / ".cache" / "ecvi-logs"))
    return any(p.is_file() for p in cache.glob(f"{name}-v*"))


def pyvrl_dir() -> Path:
    """Directory holding the pyvrl package (VRL compiler and runtime), fetched from PyPI."""
    return _run_script("fetch_pyvrl.sh")


def loki_binary() -> Path:
    """The Loki binary of tests/services/build_loki.sh (built once, cached)."""
    explicit = os.environ.get("LOKI_BINARY")
    if explicit:
        return Path(explicit)
    return _run_script(REPO / "tests" / "services" / "build_loki.sh")


def kube_binary(tool: str) -> Path:
    """kube-apiserver or etcd of tests/tools/build_kube.sh (``KUBE_APISERVER_BINARY`` / ``ETCD_BINARY`` override)."""
    explicit = os.environ.get(f"{tool.upper().replace('-', '_')}_BINARY")
    if explicit:
        return Path(explicit)
    if shutil.which("go") is None and not _cached(tool):
        _unavailable(f"{tool}: no Go toolchain to build it with and no cached binary")
    return _run_script("build_kube.sh", tool)
