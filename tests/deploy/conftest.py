"""Shared paths and loaders for the deploy tests."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.tools.locate import go_tool

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "kubernetes"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if p.is_dir())
SHIPPER_CONFIGS = [K8S / "base" / "shipper.yaml", *sorted((K8S / "overlays").glob("*/shipper.yaml")),
                   DEPLOY / "compose" / "shipper.yaml"]
# Values for the ${VAR} without defaults in the configs (a Secret and the downward API in the cluster).
CONFIG_ENV = {"ES_API_KEY": "id:secret", "NODE_NAME": "node-a"}


SCHEMAS = REPO / "tests" / "deploy" / "schemas"


def load_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def kustomize_build(overlay: str) -> list[dict[str, Any]]:
    """``kustomize build`` of ``deploy/kubernetes/overlays/<overlay>``."""
    out = subprocess.run([str(go_tool("kustomize")), "build", str(K8S / "overlays" / overlay)],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def assert_kubeconform_valid(manifest: Path, count: int) -> None:
    """kubeconform -strict against the offline schemas: all ``count`` objects valid, none skipped."""
    proc = subprocess.run(
        [str(go_tool("kubeconform")), "-strict", "-summary", "-output", "json",
         "-schema-location", str(SCHEMAS) + "/{{ .ResourceKind }}{{ .KindSuffix }}.json", str(manifest)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Nothing skipped for want of a schema: every kind has one in tests/deploy/schemas.
    assert json.loads(proc.stdout)["summary"] == {"valid": count, "invalid": 0, "errors": 0, "skipped": 0}


@pytest.fixture(scope="session")
def base_docs() -> dict[tuple[str, str], dict[str, Any]]:
    """Every manifest of the kustomize base, by (kind, name)."""
    docs: dict[tuple[str, str], dict[str, Any]] = {}
    kustomization = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        for doc in load_docs(K8S / "base" / resource):
            docs[(doc["kind"], doc["metadata"]["name"])] = doc
    return docs
