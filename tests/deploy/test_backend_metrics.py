"""The backend's alerts and dashboard query exactly the families logging_config.metrics exports."""

from __future__ import annotations

import json
import re

from logging_config.metrics import FAMILIES, sample_names
from tests.deploy.conftest import DEPLOY
from tests.deploy.promql import metric_names
from tests.deploy.test_prometheus import GUIDE_ALERTS, GUIDE_METRICS, RULES

BOARD = json.loads((DEPLOY / "grafana" / "dashboards" / "ecvi-backend.json").read_text())
# Labels Prometheus adds to every scraped series (target labels), `le` of histogram buckets,
# and `pid` of multiprocess gauges with multiprocess_mode="liveall".
TARGET_LABELS = {"job", "instance", "namespace", "pod", "node", "le", "pid"}
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^{}]*)\}")
_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")


def _family(sample: str) -> str:
    for family in FAMILIES.values():
        if sample in family.samples():
            return family.name
    raise AssertionError(f"{sample} is not exported by logging_config.metrics")


def _queries() -> list[str]:
    panels = [t["expr"] for p in BOARD["panels"] for t in p.get("targets", [])]
    return [r["expr"] for r in RULES if r["alert"] in GUIDE_ALERTS] + panels


def test_every_queried_metric_is_exported() -> None:
    exported = sample_names()
    assert exported >= GUIDE_METRICS
    for expr in _queries():
        assert metric_names(expr) <= exported, (expr, metric_names(expr) - exported)


def test_every_label_a_query_uses_is_one_the_metric_has() -> None:
    for expr in _queries():
        names = metric_names(expr)
        allowed = set(TARGET_LABELS)
        for name in names:
            allowed |= set(FAMILIES[_family(name)].labels)
        for metric, selector in _SELECTOR.findall(expr):
            labels = {m for m in _MATCHER.findall(selector)}
            assert labels <= set(FAMILIES[_family(metric)].labels) | TARGET_LABELS, (expr, labels)
        for group in _GROUPING.findall(expr):
            used = {n.strip() for n in group.split(",") if n.strip()}
            assert used <= allowed, (expr, used - allowed)


def test_the_pool_alert_is_per_pod_and_pool_not_summed() -> None:
    rule = next(r for r in RULES if r["alert"] == "DatabaseConnectionPoolExhausted")
    assert rule["expr"].startswith("max by (namespace, pod, pool) (")
    assert "sum(" not in rule["expr"]
