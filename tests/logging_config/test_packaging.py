"""The backend installs the logging library alone; the README's quick start runs as written."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _readme_snippet() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Using `logging_config` in the backend"):]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the README has no Python quick start"
    return match.group(1)


def test_readme_quick_start_runs_as_written(tmp_path: Path) -> None:
    driver = textwrap.dedent(
        """
        from starlette.testclient import TestClient

        response = TestClient(app).post("/companies", headers={"X-Request-ID": "req-readme"})
        assert response.status_code == 200, response.text
        """
    )
    script = tmp_path / "quickstart.py"
    script.write_text(_readme_snippet() + driver)
    env = {k: v for k, v in os.environ.items() if k != "SENTRY_DSN"}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    [created] = [line for line in lines if line["message"] == "Company created"]
    assert (created["request_id"], created["user_id"], created["company_id"], created["plan"]) == (
        "req-readme", "user-123", "123e4567", "pro",
    )  # fmt: skip
    assert [line["status"] for line in lines if line["logger"] == "ecvi.access"] == [200]


def test_submodules_are_reachable_after_a_plain_import() -> None:
    code = "import logging_config; logging_config.celery.install(); print(logging_config.asgi.__name__)"
    done = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "logging_config.asgi"


def test_both_distributions_declare_the_same_version() -> None:
    logging_dist = tomllib.loads((ROOT / "logging_config" / "pyproject.toml").read_text())["project"]
    shipper_dist = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert f"ecvi-logging=={logging_dist['version']}" in shipper_dist["dependencies"]
    assert logging_dist["version"] == shipper_dist["version"]
    assert sorted(logging_dist["dependencies"]) == ["orjson>=3.10", "python-json-logger>=3.1"]


@pytest.mark.timeout(600)
def test_the_logging_distribution_installs_alone_into_a_fresh_venv(tmp_path: Path) -> None:
    # Built from a copy, so the build leaves nothing in the checkout.
    source = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "build", "*.egg-info")
    shutil.copytree(ROOT / "logging_config", source, ignore=ignore)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-c",
         str(ROOT / "constraints.txt"), str(source)],
        capture_output=True, text=True, timeout=500,
    )
    assert install.returncode == 0, install.stderr
    listed = subprocess.run([str(python), "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
                            capture_output=True, text=True, check=True, timeout=60)
    names = {p["name"].lower() for p in json.loads(listed.stdout)} - {"pip", "setuptools", "wheel"}
    assert names == {"ecvi-logging", "orjson", "python-json-logger"}
    code = (
        "import io, logging, logging_config; s = io.StringIO(); logging_config.configure(service='x', stream=s);"
        "logging_config.get_logger('a').info('hi', plan='pro'); print(s.getvalue(), end='')"
    )
    done = subprocess.run([str(python), "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["plan"] == "pro"
