"""Shared paths and loaders for the deploy tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "kubernetes"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if p.is_dir())
SHIPPER_CONFIGS = [K8S / "base" / "shipper.yaml", *sorted((K8S / "overlays").glob("*/shipper.yaml")),
                   DEPLOY / "compose" / "shipper.yaml"]
# Values for the ${VAR} without defaults in the configs (a Secret and the downward API in the cluster).
CONFIG_ENV = {"ES_API_KEY": "id:secret", "NODE_NAME": "node-a"}


def load_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.fixture(scope="session")
def base_docs() -> dict[tuple[str, str], dict[str, Any]]:
    """Every manifest of the kustomize base, by (kind, name)."""
    docs: dict[tuple[str, str], dict[str, Any]] = {}
    kustomization = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        for doc in load_docs(K8S / "base" / resource):
            docs[(doc["kind"], doc["metadata"]["name"])] = doc
    return docs
