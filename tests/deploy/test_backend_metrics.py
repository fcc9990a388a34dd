"""The backend's alerts and dashboard query exactly the families logging_config.metrics exports."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jsonschema
import yaml

from logging_config.metrics import FAMILIES, sample_names
from tests.deploy.conftest import DEPLOY, REPO, load_docs
from tests.deploy.promql import metric_names
from tests.deploy.test_prometheus import GUIDE_ALERTS, GUIDE_METRICS, RULES
from tests.services._process import free_port

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


def test_backend_servicemonitor_example_is_valid_and_scrapes_metrics() -> None:
    schema = json.loads((REPO / "tests" / "deploy" / "schemas" / "servicemonitor-monitoring-v1.json").read_text())
    [doc] = load_docs(DEPLOY / "kubernetes" / "examples" / "backend-servicemonitor.yaml")
    assert not list(jsonschema.Draft202012Validator(schema).iter_errors(doc))
    assert {(e["port"], e["path"]) for e in doc["spec"]["endpoints"]} == {("http", "/metrics"), ("metrics", "/metrics")}


def test_compose_prometheus_scrapes_the_demo_backend() -> None:
    compose = yaml.safe_load((DEPLOY / "compose" / "docker-compose.yaml").read_text())
    address = compose["services"]["backend"]["environment"]["ECVI_DEMO_METRICS_ADDRESS"]
    config = yaml.safe_load((DEPLOY / "compose" / "prometheus.yml").read_text())
    [job] = [j for j in config["scrape_configs"] if j["job_name"] == "ecvi-backend"]
    assert job["static_configs"][0]["targets"] == [f"backend:{address.rsplit(':', 1)[1]}"]


def test_demo_backend_serves_every_metric_the_alerts_and_dashboard_query(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "ECVI_DEMO_METRICS_ADDRESS": f"127.0.0.1:{port}"}
    demo = subprocess.Popen([sys.executable, "-m", "shipper.demo_backend", str(tmp_path / "backend.log")],
                            cwd=REPO, env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        missing = set(GUIDE_METRICS)
        while missing and time.monotonic() < deadline:
            time.sleep(0.5)
            with contextlib.suppress(httpx.HTTPError):
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
                missing = {m for m in GUIDE_METRICS if not re.search(rf"^{m}[{{ ]", text, re.M)}
        assert missing == set()
    finally:
        demo.terminate()
        demo.wait(10)


def test_backend_runbooks_name_the_metric_panel_and_log_queries() -> None:
    runbooks = (REPO / "docs" / "runbooks.md").read_text()
    sections = {s.splitlines()[0].strip(): s for s in re.split(r"^### ", runbooks, flags=re.M)[1:]}
    titles = {p["title"] for p in BOARD["panels"]}
    for rule in RULES:
        if rule["alert"] not in GUIDE_ALERTS:
            continue
        section = sections[rule["alert"]]
        follow = section[section.index("**Follow it:**"):section.index("**Actions:**")]
        assert metric_names(rule["expr"]) & {m for m in GUIDE_METRICS if m.removesuffix("_bucket") in follow}
        assert any(f"*{title}*" in follow for title in titles), rule["alert"]
        assert "LogQL `{" in follow and "Elasticsearch `" in follow, rule["alert"]
