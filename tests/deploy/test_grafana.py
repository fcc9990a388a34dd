"""Grafana provisioning and dashboards: valid JSON, queries over metrics and labels that exist."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from shipper.config import load_config
from shipper.sinks.loki.config import DEFAULT_METADATA, LokiSinkConfig
from shipper.sinks.loki.encoder import metadata_name
from tests.deploy.conftest import CONFIG_ENV, DEPLOY, SHIPPER_CONFIGS
from tests.deploy.promql import metric_names, shipper_sample_names
from tests.deploy.test_prometheus import GUIDE_METRICS

GRAFANA = DEPLOY / "grafana"
BOARDS = {p.name: json.loads(p.read_text()) for p in sorted((GRAFANA / "dashboards").glob("*.json"))}
GUIDE_PANELS = ["HTTP Request Rate", "HTTP Request Duration (p95)", "HTTP Status Codes", "Active Requests",
                "Database Connections", "Celery Tasks", "Celery Task Duration", "Error Rate"]


def _targets(board: dict[str, Any], ds_type: str) -> list[str]:
    return [t["expr"] for p in board["panels"] for t in p.get("targets", []) if t["datasource"]["type"] == ds_type]


def _loki_labels() -> set[str]:
    """Stream label names the Loki sinks of the deploy configs set."""
    labels: set[str] = set()
    for path in SHIPPER_CONFIGS:
        for sink in load_config(path, env=CONFIG_ENV).sinks.values():
            if isinstance(sink, LokiSinkConfig):
                labels |= set(sink.labels)
    return labels


def _structured_metadata() -> set[str]:
    names = {metadata_name(p) for p in DEFAULT_METADATA}
    for path in SHIPPER_CONFIGS:
        for sink in load_config(path, env=CONFIG_ENV).sinks.values():
            if isinstance(sink, LokiSinkConfig):
                names |= {metadata_name(p) for p in sink.structured_metadata}
    return names


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_dashboard_structure(name: str) -> None:
    board = BOARDS[name]
    assert board["uid"] and board["title"] and board["panels"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for p in board["panels"]:
        pos = p["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24 and pos["h"] > 0
        for t in p.get("targets", []):
            assert t["expr"].strip()


def test_dashboards_use_provisioned_datasources() -> None:
    provisioned = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "ecvi.yaml").read_text())
    uids = {d["uid"]: d["type"] for d in provisioned["datasources"]}
    assert uids == {"prometheus": "prometheus", "loki": "loki", "elasticsearch": "elasticsearch"}
    for board in BOARDS.values():
        for p in board["panels"]:
            for ds in [p.get("datasource"), *(t["datasource"] for t in p.get("targets", []))]:
                if ds:
                    assert uids[ds["uid"]] == ds["type"]
    es = next(d for d in provisioned["datasources"] if d["type"] == "elasticsearch")
    assert es["jsonData"]["timeField"] == "@timestamp" and es["jsonData"]["index"] == "ecvi-logs-*"
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "ecvi.yaml").read_text())["providers"]
    assert providers[0]["options"]["path"] == "/var/lib/grafana/dashboards/ecvi"


def test_shipper_dashboard_queries_exported_metrics() -> None:
    board = BOARDS["ecvi-logs-shipper.json"]
    exported = shipper_sample_names() | {"up"}
    used: set[str] = set()
    for expr in _targets(board, "prometheus"):
        names = metric_names(expr)
        assert names and names <= exported, (expr, names - exported)
        used |= names
    for needed in ("ecvi_shipper_events_received_total", "ecvi_shipper_events_sent_total",
                   "ecvi_shipper_file_lag_bytes", "ecvi_shipper_buffer_bytes", "ecvi_shipper_buffer_max_bytes",
                   "ecvi_shipper_retries_total", "ecvi_shipper_events_failed_total",
                   "ecvi_shipper_request_duration_seconds_bucket"):
        assert needed in used
    assert any("histogram_quantile(0.95" in e for e in _targets(board, "prometheus"))
    for var in board["templating"]["list"]:
        assert metric_names(var["query"]["query"].replace("label_values(", "").split(",")[0]) <= exported


def test_backend_dashboard_has_the_guides_eight_panels() -> None:
    board = BOARDS["ecvi-backend.json"]
    assert [p["title"] for p in board["panels"]] == GUIDE_PANELS
    for expr in _targets(board, "prometheus"):
        assert metric_names(expr) <= GUIDE_METRICS, expr


_SELECTOR = re.compile(r"\{([^{}]*)\}")
_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"')
_LABEL_FILTER = re.compile(r'\|\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|==|=)\s*"')
_BY = re.compile(r"\bby\s*\(([^)]*)\)")


def test_logql_uses_labels_the_loki_sink_sets() -> None:
    labels = _loki_labels()
    metadata = _structured_metadata()
    assert {"service", "level"} <= labels
    assert "request_id" in metadata and "company_id" in metadata
    board = BOARDS["ecvi-logs-logs.json"]
    queries = _targets(board, "loki")
    assert queries
    for expr in queries:
        selectors = _SELECTOR.findall(expr)
        assert selectors, expr
        for sel in selectors:
            names = {m[0] for m in _MATCHER.findall(sel)}
            assert names and names <= labels, (expr, names - labels)
        for name, _ in _LABEL_FILTER.findall(expr):
            assert name in metadata | labels, (expr, name)
        for group in _BY.findall(expr):
            names = {n.strip() for n in group.split(",")}
            assert names <= labels | metadata, (expr, names)
    lookup = next(p for p in board["panels"] if p["title"] == "Request lookup")
    assert '| request_id = "$request_id"' in lookup["targets"][0]["expr"]
    top = next(p for p in board["panels"] if p["title"] == "Top companies by errors")
    assert "sum by (company_id)" in top["targets"][0]["expr"]
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            assert var["query"]["label"] in labels


def test_dashboards_are_generated(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("deploy_generate", DEPLOY / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, text in module.dashboards().items():
        assert (GRAFANA / "dashboards" / name).read_text() == text
