"""Alert rules (promtool check + unit tests), the Alertmanager config (amtool) and runbook links."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from logging_config.metrics import sample_names
from shipper.jobs.status import METRIC_NAMES as ARCHIVE_METRICS
from tests.deploy.conftest import DEPLOY, REPO
from tests.deploy.promql import metric_names, shipper_sample_names
from tests.tools.locate import go_tool

PROMETHEUS = DEPLOY / "prometheus"
ALERTS = yaml.safe_load((PROMETHEUS / "alerts.yaml").read_text())
RULES = [r for g in ALERTS["groups"] for r in g["rules"]]
GUIDE_ALERTS = {"HighErrorRate", "HighLatency", "DatabaseConnectionPoolExhausted", "CeleryTaskFailureRate"}
# The backend's metrics, from their one definition in logging_config.metrics.
GUIDE_METRICS = sample_names()
# Not ours: Prometheus' own and kube-state-metrics'.
EXTERNAL_METRICS = {"up", "kube_daemonset_status_number_unavailable", "kube_cronjob_status_last_successful_time"}


def _promtool(*args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(go_tool("promtool")), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, check=False)


@pytest.mark.timeout(3600)
def test_promtool_check_rules() -> None:
    proc = _promtool("check", "rules", "alerts.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(RULES)} rules found" in proc.stdout


@pytest.mark.timeout(3600)
def test_promtool_unit_tests_pass() -> None:
    proc = _promtool("test", "rules", "alerts.test.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_every_alert_is_tested_firing_and_quiet() -> None:
    tests = yaml.safe_load((PROMETHEUS / "alerts.test.yaml").read_text())["tests"]
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in tests:
        for check in case["alert_rule_test"]:
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    names = {r["alert"] for r in RULES}
    assert names - firing == set(), "alerts never tested firing"
    assert names - quiet == set(), "alerts never tested quiet"


@pytest.mark.timeout(3600)
def test_amtool_check_config() -> None:
    proc = subprocess.run([str(go_tool("amtool")), "check-config", str(PROMETHEUS / "alertmanager.yaml")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_alertmanager_routes_like_the_guide_with_placeholders() -> None:
    text = (PROMETHEUS / "alertmanager.yaml").read_text()
    config = yaml.safe_load(text)
    assert config["route"]["receiver"] == "default"
    assert config["route"]["group_by"] == ["alertname", "severity"]
    [critical] = config["route"]["routes"]
    assert critical["receiver"] == "critical-alerts" and critical["continue"] is True
    assert {r["name"] for r in config["receivers"]} == {"default", "critical-alerts"}
    for placeholder in ("team@example.com", "oncall@example.com", "smtp.example.com:587",
                        "https://hooks.slack.com/services/YOUR/WEBHOOK/URL"):
        assert placeholder in text


def _anchors(markdown: str) -> set[str]:
    """GitHub-style anchors of the headings."""
    out = set()
    for line in markdown.splitlines():
        m = re.match(r"^#{1,6}\s+(.*)$", line)
        if m:
            out.add(re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-"))
    return out


def test_each_alert_links_its_runbook_section() -> None:
    runbooks = (REPO / "docs" / "runbooks.md").read_text()
    anchors = _anchors(runbooks)
    for rule in RULES:
        url = rule["annotations"]["runbook_url"]
        assert url.startswith("https://git.example.com/ecvi/ecvi-logs/-/blob/main/docs/runbooks.md#"), url
        anchor = url.rsplit("#", 1)[1]
        assert anchor in anchors, f"{rule['alert']}: no section #{anchor} in docs/runbooks.md"
        assert rule["labels"]["severity"] in ("critical", "warning")
        assert rule["annotations"]["summary"]


def test_each_runbook_has_symptoms_and_actions() -> None:
    runbooks = (REPO / "docs" / "runbooks.md").read_text()
    sections = re.split(r"^### ", runbooks, flags=re.M)[1:]
    named = {s.splitlines()[0].strip(): s for s in sections}
    for rule in RULES:
        anchor = rule["annotations"]["runbook_url"].rsplit("#", 1)[1]
        section = next(body for title, body in named.items() if title.lower() == anchor)
        assert "**Symptoms:**" in section and "**Actions:**" in section, anchor
    shipper = [s for t, s in named.items() if t.startswith("EcviLogs")]
    commands = "\n".join(shipper)
    for command in ("kubectl", "ecvi-logs dead-letter list", "ecvi-logs dead-letter replay", "/metrics"):
        assert command in commands


def test_rules_use_only_metrics_that_exist() -> None:
    exported = shipper_sample_names() | set(ARCHIVE_METRICS)  # the archive job's node-exporter textfile
    for rule in RULES:
        names = metric_names(rule["expr"])
        assert names, rule["alert"]
        if rule["alert"] in GUIDE_ALERTS:
            assert names <= GUIDE_METRICS, (rule["alert"], names - GUIDE_METRICS)
        else:
            assert names <= exported | EXTERNAL_METRICS, (rule["alert"], names - exported - EXTERNAL_METRICS)


def test_buffer_alert_is_the_fill_ratio_above_80_percent() -> None:
    rule = next(r for r in RULES if r["alert"] == "EcviLogsBufferHigh")
    assert "ecvi_shipper_buffer_bytes / ecvi_shipper_buffer_max_bytes" in rule["expr"]
    assert rule["expr"].rstrip().endswith("> 0.8")


def test_metric_name_extraction() -> None:
    expr = ('histogram_quantile(0.95, sum by (sink, le) (rate(ecvi_shipper_request_duration_seconds_bucket'
            '{node=~"$node", sink="x"}[$__rate_interval]))) > 1 and on (sink) up{job="a"} == 0')
    assert metric_names(expr) == {"ecvi_shipper_request_duration_seconds_bucket", "up"}


def _alert(name: str) -> dict[str, Any]:
    return next(r for r in RULES if r["alert"] == name)


def test_archive_alert_reads_kube_state_metrics_after_26_hours() -> None:
    rule = _alert("EcviLogsArchiveNotSucceeded")
    assert 'kube_cronjob_status_last_successful_time{cronjob="ecvi-logs-archive"}' in rule["expr"]
    assert rule["expr"].endswith("> 93600")
    assert _alert("EcviLogsArchiveNeverSucceeded")["for"] == "26h"
