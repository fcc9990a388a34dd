"""The local docker compose stack (no Docker here: its structure is checked)."""

from __future__ import annotations

from typing import Any

import yaml

from tests.deploy.conftest import DEPLOY

COMPOSE = DEPLOY / "compose"


def _compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((COMPOSE / "docker-compose.yaml").read_text())
    return doc


def test_services_and_their_dependencies() -> None:
    doc = _compose()
    services = doc["services"]
    assert {"backend", "shipper", "loki", "grafana", "elasticsearch"} <= set(services)
    for name, svc in services.items():
        assert "image" in svc or "build" in svc, name
        for dep in svc.get("depends_on", []):
            assert dep in services, (name, dep)
    for volume in (v.split(":")[0] for s in services.values() for v in s.get("volumes", [])):
        if not volume.startswith((".", "/")):
            assert volume in doc["volumes"], volume


def test_mounted_files_exist() -> None:
    for svc in _compose()["services"].values():
        for v in svc.get("volumes", []):
            source = v.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE / source).resolve().exists(), source
        build = svc.get("build")
        if build:
            assert (COMPOSE / build["context"] / build["dockerfile"]).resolve().is_file()


def test_ports_are_bound_to_loopback_only() -> None:
    for name, svc in _compose()["services"].items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)


def test_shipper_reads_what_the_backend_writes() -> None:
    services = _compose()["services"]
    config = yaml.safe_load((COMPOSE / "shipper.yaml").read_text())
    include = config["sources"]["app"]["include"][0]
    log_file = services["backend"]["entrypoint"][-1]
    assert log_file.startswith(include.rsplit("/", 1)[0] + "/")
    assert config["sinks"]["loki"]["endpoint"] == "http://loki:3100"
    assert config["sinks"]["elasticsearch"]["endpoint"] == "http://elasticsearch:9200"
    assert services["shipper"]["stop_grace_period"] == "45s"
    grafana_env = services["grafana"]["environment"]
    assert {"ECVI_PROMETHEUS_URL", "ECVI_LOKI_URL", "ECVI_ELASTICSEARCH_URL"} <= set(grafana_env)
