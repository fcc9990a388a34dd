"""The Kubernetes manifests: valid against the Kubernetes schemas, consistent with the shipper."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from shipper.cli import main as ecvi_logs
from shipper.config import load_config
from tests.deploy.conftest import (
    CONFIG_ENV,
    DEPLOY,
    K8S,
    OVERLAYS,
    SCHEMAS,
    SHIPPER_CONFIGS,
    assert_kubeconform_valid,
    kustomize_build,
    load_docs,
)


@pytest.mark.parametrize("path", SHIPPER_CONFIGS, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_shipper_configs_pass_ecvi_logs_validate(path: Path) -> None:
    result = CliRunner().invoke(ecvi_logs, ["validate", "--config", str(path)], env=CONFIG_ENV)
    assert result.exit_code == 0, result.output
    assert "valid" in result.output


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, kustomize_build(request.param)


@pytest.mark.timeout(3600)
def test_overlays_validate_with_kubeconform(rendered: tuple[str, list[dict[str, Any]]], tmp_path: Path) -> None:
    overlay, docs = rendered
    manifest = tmp_path / f"{overlay}.yaml"
    manifest.write_text(yaml.safe_dump_all(docs))
    assert_kubeconform_valid(manifest, len(docs))


@pytest.mark.timeout(3600)
def test_overlays_render_every_component(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    overlay, docs = rendered
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(["Namespace", "ServiceAccount", "ServiceAccount", "PriorityClass", "ConfigMap",
                            "DaemonSet", "Service", "Service", "ServiceMonitor", "PrometheusRule", "CronJob",
                            "NetworkPolicy", "ClusterRole", "ClusterRoleBinding"])
    # Least privilege: one read-only role, nothing namespaced that could grant more.
    assert not {"Role", "RoleBinding"} & set(kinds)
    binding = next(d for d in docs if d["kind"] == "ClusterRoleBinding")
    # kustomize's namespace reaches the subject: the binding names the account that exists.
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "ecvi-logs", "namespace": "ecvi-logs"}]
    namespaced = [d for d in docs if d["kind"] not in ("Namespace", "PriorityClass", "ClusterRole",
                                                       "ClusterRoleBinding")]
    assert {d["metadata"].get("namespace") for d in namespaced} == {"ecvi-logs"}
    config_map = next(d for d in docs if d["kind"] == "ConfigMap")
    daemonset = next(d for d in docs if d["kind"] == "DaemonSet")
    # The generated ConfigMap's hashed name is what the pods mount.
    volumes = {v["name"]: v for v in daemonset["spec"]["template"]["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"] == config_map["metadata"]["name"]
    text = config_map["data"]["shipper.yaml"]
    sink_types = {s["type"] for s in yaml.safe_load(text)["sinks"].values()}
    assert sink_types == {"loki": {"loki"}, "elasticsearch": {"elasticsearch"}, "cloudwatch": {"cloudwatch"}}[overlay]
    image = daemonset["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "registry.example.com/ecvi/ecvi-logs:0.1.0"


def _schema_for(doc: dict[str, Any]) -> Path:
    group_version = doc["apiVersion"].split("/")
    suffix = "-" + group_version[0].split(".")[0].lower() + ("-" + group_version[1] if len(group_version) > 1 else "")
    return SCHEMAS / f"{doc['kind'].lower()}{suffix}.json"


@pytest.mark.parametrize("path", sorted((K8S).rglob("*.yaml")), ids=lambda p: str(p.relative_to(K8S)))
def test_each_manifest_matches_its_schema(path: Path) -> None:
    """Without the Go tools: every complete manifest against the same schemas, with jsonschema."""
    for doc in load_docs(path):
        if "apiVersion" not in doc or doc.get("kind") == "Kustomization" or path.parent.name != "base":
            continue
        schema = json.loads(_schema_for(doc).read_text())
        errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(doc), key=str)
        assert not errors, f"{path.name} {doc['kind']}: {[e.message for e in errors[:5]]}"


def test_schemas_reject_a_misspelt_field() -> None:
    schema = json.loads((SCHEMAS / "daemonset-apps-v1.json").read_text())
    ds = load_docs(K8S / "base" / "daemonset.yaml")[0]
    ds["spec"]["template"]["spec"]["containers"][0]["imagee"] = "x"
    assert not jsonschema.Draft202012Validator(schema).is_valid(ds)


def _pod(base_docs: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = base_docs[("DaemonSet", "ecvi-logs")]["spec"]["template"]["spec"]
    return spec


def test_daemonset_runs_on_every_node_and_survives_restarts(base_docs: dict[tuple[str, str], dict[str, Any]]) -> None:
    pod = _pod(base_docs)
    config = load_config(K8S / "base" / "shipper.yaml", env=CONFIG_ENV)
    assert pod["tolerations"] == [{"operator": "Exists"}]
    assert ("PriorityClass", pod["priorityClassName"]) in base_docs
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert volumes["varlog"]["hostPath"]["path"] == "/var/log" and mounts["varlog"]["readOnly"] is True
    assert mounts["varlog"]["mountPath"] == "/var/log"
    # data_dir is a hostPath, mounted where the config puts it.
    assert volumes["data"]["hostPath"] == {"path": config.data_dir, "type": "DirectoryOrCreate"}
    assert mounts["data"]["mountPath"] == config.data_dir
    strategy = base_docs[("DaemonSet", "ecvi-logs")]["spec"]["updateStrategy"]
    assert strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}


def test_shutdown_fits_in_the_grace_period(base_docs: dict[tuple[str, str], dict[str, Any]]) -> None:
    grace = _pod(base_docs)["terminationGracePeriodSeconds"]
    for path in SHIPPER_CONFIGS[:-1]:
        assert grace > load_config(path, env=CONFIG_ENV).shutdown_timeout_secs + 10, path


def test_shipper_container_is_locked_down(base_docs: dict[tuple[str, str], dict[str, Any]]) -> None:
    pod = _pod(base_docs)
    c = pod["containers"][0]
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"], "add": ["DAC_READ_SEARCH"]}
    assert c["resources"] == {"requests": {"cpu": "100m", "memory": "128Mi"},
                              "limits": {"cpu": "1", "memory": "256Mi"}}
    env = {e["name"]: e for e in c["env"]}
    assert env["NODE_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}


def test_probes_and_metrics_use_the_api_port(base_docs: dict[tuple[str, str], dict[str, Any]]) -> None:
    config = load_config(K8S / "base" / "shipper.yaml", env=CONFIG_ENV)
    port = int(config.api.address.rsplit(":", 1)[1])
    c = _pod(base_docs)["containers"][0]
    assert c["ports"][0] == {"name": "metrics", "containerPort": port, "protocol": "TCP"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "metrics"}
    assert config.api.address.startswith("0.0.0.0:")
    service = base_docs[("Service", "ecvi-logs")]["spec"]
    assert service["publishNotReadyAddresses"] is True
    assert service["ports"][0]["targetPort"] == "metrics"
    monitor = base_docs[("ServiceMonitor", "ecvi-logs")]["spec"]
    assert monitor["endpoints"][0]["port"] == service["ports"][0]["name"]
    assert monitor["endpoints"][0]["path"] == "/metrics"
    assert all(monitor["selector"]["matchLabels"][k] == v for k, v in service["selector"].items())


def test_only_the_shipper_account_has_a_token(base_docs: dict[tuple[str, str], dict[str, Any]]) -> None:
    accounts = {name: d for (kind, name), d in base_docs.items() if kind == "ServiceAccount"}
    assert set(accounts) == {"ecvi-logs", "ecvi-logs-jobs"}
    assert accounts["ecvi-logs"]["automountServiceAccountToken"] is True
    assert accounts["ecvi-logs-jobs"]["automountServiceAccountToken"] is False
    assert _pod(base_docs)["serviceAccountName"] == "ecvi-logs"
    assert _pod(base_docs)["automountServiceAccountToken"] is True
    job_pod = base_docs[("CronJob", "ecvi-logs-archive")]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert job_pod["serviceAccountName"] == "ecvi-logs-jobs"
    assert job_pod["automountServiceAccountToken"] is False


def test_shipper_role_reads_pods_and_namespaces_only(base_docs: dict[tuple[str, str], dict[str, Any]]) -> None:
    role = base_docs[("ClusterRole", "ecvi-logs-shipper")]
    rules = [(tuple(r["apiGroups"]), tuple(sorted(r["resources"])), tuple(sorted(r["verbs"]))) for r in role["rules"]]
    assert rules == [(("",), ("namespaces", "pods"), ("get", "list", "watch"))]
    assert not any("resourceNames" in r or "nonResourceURLs" in r for r in role["rules"])
    binding = base_docs[("ClusterRoleBinding", "ecvi-logs-shipper")]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": "ecvi-logs-shipper"}
    namespace = next(name for (kind, name) in base_docs if kind == "Namespace")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "ecvi-logs", "namespace": namespace}]


def test_archive_runs_and_is_verified_before_retention(base_docs: dict[tuple[str, str], dict[str, Any]]) -> None:
    cron = base_docs[("CronJob", "ecvi-logs-archive")]["spec"]
    assert cron["concurrencyPolicy"] == "Forbid"
    assert cron["successfulJobsHistoryLimit"] >= 1 and cron["failedJobsHistoryLimit"] >= 1
    job = cron["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 3
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    # Init containers finish (exit 0) before the main container starts: archive, then retention.
    [archive] = pod["initContainers"]
    [retention] = pod["containers"]
    assert archive["args"][:2] == ["archive", "run"]
    args = dict(zip(archive["args"][2::2], archive["args"][3::2], strict=True))
    # Each settled day is archived the night after (weeks before its deletion), its result
    # written for node-exporter's textfile collector.
    assert args["--settled"] == "26h" and args["--days"] == "30" and args["--to"].startswith("s3://")
    assert args["--textfile"].startswith("/textfile/")
    assert retention["args"] == ["retention", "apply", "--config", "/etc/ecvi-logs/shipper.yaml"]
    for c in (archive, retention):
        assert {"secretRef": {"name": "ecvi-logs-credentials"}} in c["envFrom"]
        assert c["securityContext"]["readOnlyRootFilesystem"] is True


def test_prometheus_rule_is_generated_from_the_rules_file() -> None:
    proc = subprocess.run([sys.executable, str(DEPLOY / "generate.py"), "--check"], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    rule = load_docs(K8S / "base" / "prometheusrule.yaml")[0]
    alerts = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yaml").read_text())
    assert rule["spec"]["groups"] == alerts["groups"]


def test_dockerfile_is_multi_stage_non_root_with_the_entrypoint() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    froms = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert len(froms) == 2 and "AS build" in froms[0]
    assert "-slim" in text and "pip wheel --no-cache-dir -c constraints.txt" in text
    assert "\nUSER 10001:0\n" in text
    assert 'ENTRYPOINT ["ecvi-logs"]' in text
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    for copied in ("pyproject.toml", "constraints.txt", "logging_config/", "shipper/", "pipelines/"):
        assert f"!{copied}" in ignore


@pytest.mark.parametrize("path", SHIPPER_CONFIGS[:-1], ids=lambda p: str(p.relative_to(DEPLOY)))
def test_forward_source_is_the_hostport_the_network_policy_admits(
    path: Path, base_docs: dict[tuple[str, str], dict[str, Any]]
) -> None:
    config = load_config(path, env=CONFIG_ENV)
    forwards = [s for s in config.sources.values() if s.type == "forward"]
    assert len(forwards) == 1
    host, port = forwards[0].address.rsplit(":", 1)
    assert host == "0.0.0.0"
    ports = {p["name"]: p for p in _pod(base_docs)["containers"][0]["ports"]}
    assert ports["forward"] == {"name": "forward", "containerPort": int(port), "hostPort": int(port),
                                "protocol": "TCP"}
    ingress = base_docs[("NetworkPolicy", "ecvi-logs")]["spec"]["ingress"]
    forward_rules = [r for r in ingress if {"port": int(port), "protocol": "TCP"} in r["ports"]]
    # Pods of any namespace, nothing from outside the cluster.
    assert [r["from"] for r in forward_rules] == [[{"namespaceSelector": {}}]]
    # By name: a Service that keeps each sender on its own node.
    service = base_docs[("Service", "ecvi-logs-forward")]["spec"]
    assert service["internalTrafficPolicy"] == "Local"
    assert service["ports"] == [{"name": "forward", "port": int(port), "targetPort": "forward", "protocol": "TCP"}]
    assert service["selector"] == base_docs[("DaemonSet", "ecvi-logs")]["spec"]["selector"]["matchLabels"]
    # Prometheus scrapes the metrics Service only.
    monitor = base_docs[("ServiceMonitor", "ecvi-logs")]["spec"]["selector"]["matchLabels"]
    labels = base_docs[("Service", "ecvi-logs-forward")]["metadata"]["labels"]
    assert any(labels.get(k) != v for k, v in monitor.items())
    # Every event reaches the sinks, whichever source read it.
    for sink in config.sinks.values():
        reached = set(sink.inputs)
        for name in sink.inputs:
            reached |= set(getattr(config.transforms.get(name), "inputs", []))
        assert set(config.sources) <= reached, path


@pytest.mark.parametrize("path", SHIPPER_CONFIGS[:-1], ids=lambda p: str(p.relative_to(DEPLOY)))
def test_container_logs_use_the_api_metadata_of_this_node(
    path: Path, base_docs: dict[tuple[str, str], dict[str, Any]]
) -> None:
    [files] = [s for s in load_config(path, env=CONFIG_ENV).sources.values() if s.type == "file"]
    assert files.kubernetes_api is not None and files.multiline is not None
    # NODE_NAME reaches the config from the downward API, so each shipper watches its own node's pods.
    assert files.kubernetes_api.node_name == CONFIG_ENV["NODE_NAME"]
    raw = yaml.safe_load(path.read_text())
    assert raw["sources"]["containers"]["kubernetes_api"]["node_name"] == "${NODE_NAME}"
    env = {e["name"]: e for e in _pod(base_docs)["containers"][0]["env"]}
    assert env["NODE_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
