"""The Helm chart: lints, renders valid manifests, and renders what kustomize renders.

The chart (deploy/helm/ecvi-logs) and the kustomize overlays are two ways to install the same
objects. The drift test renders both for each backend and compares every object field by field,
after removing only what the two tools add on their own (Helm's bookkeeping labels and the config
checksum annotation; kustomize's content hash in the ConfigMap's name) and ordering volumes and
mounts by name (their order means nothing to Kubernetes).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import DEPLOY, K8S, OVERLAYS, REPO, assert_kubeconform_valid, kustomize_build, load_docs
from tests.tools.locate import go_tool

CHART = DEPLOY / "helm" / "ecvi-logs"
# The Kubernetes release the offline schemas are for; Helm's offline default (1.20) predates
# CronJob timeZone, which the chart's kubeVersion constraint requires.
KUBE_VERSION = "1.34.0"
HELM_ONLY_LABELS = {"helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/instance",
                    "app.kubernetes.io/version"}
_HASHED_CONFIG = re.compile(r"^ecvi-logs-config-[a-z0-9]{10}$")

Doc = dict[str, Any]


@pytest.fixture(scope="session")
def helm() -> Path:
    """The helm binary: ``HELM_BINARY``, or built once by tests/tools/build_go_tool.sh helm."""
    return go_tool("helm")


def _run_helm(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=300, check=False)


def render_text(helm: Path, backend: str, values: dict[str, Any] | None = None, *, tmp: Path | None = None) -> str:
    """``helm template`` of the chart for ``backend`` in namespace ecvi-logs, with extra values."""
    args = ["template", "ecvi-logs", str(CHART), "--namespace", "ecvi-logs", "--kube-version", KUBE_VERSION,
            "--set", f"backend={backend}"]
    if values:
        assert tmp is not None
        extra = tmp / f"values-{backend}.yaml"
        extra.write_text(yaml.safe_dump(values))
        args += ["-f", str(extra)]
    proc = _run_helm(helm, *args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def render(helm: Path, backend: str, values: dict[str, Any] | None = None, *, tmp: Path | None = None) -> list[Doc]:
    return [d for d in yaml.safe_load_all(render_text(helm, backend, values, tmp=tmp)) if d]


def overlay_values(overlay: str) -> dict[str, Any]:
    """The chart values that stand for what an overlay patches in (the Namespace is the base's)."""
    values: dict[str, Any] = {"namespace": {"create": True}}
    irsa = K8S / "overlays" / overlay / "irsa.yaml"
    if irsa.exists():
        accounts = {d["metadata"]["name"]: d["metadata"]["annotations"] for d in load_docs(irsa)}
        values["serviceAccount"] = {"annotations": accounts["ecvi-logs"]}
        values["archive"] = {"serviceAccount": {"annotations": accounts["ecvi-logs-jobs"]}}
    return values


def _pod_templates(doc: Doc) -> list[Doc]:
    if doc["kind"] == "DaemonSet":
        return [doc["spec"]["template"]]
    if doc["kind"] == "CronJob":
        return [doc["spec"]["jobTemplate"]["spec"]["template"]]
    return []


def _sort_named(pod_spec: Doc) -> None:
    pod_spec["volumes"] = sorted(pod_spec.get("volumes", []), key=lambda v: v["name"])
    for c in pod_spec.get("initContainers", []) + pod_spec.get("containers", []):
        c["volumeMounts"] = sorted(c.get("volumeMounts", []), key=lambda m: m["name"])


def normalise_helm(docs: list[Doc]) -> dict[tuple[str, str], Doc]:
    out = {}
    for doc in docs:
        labels = doc["metadata"].get("labels", {})
        for key in HELM_ONLY_LABELS:
            labels.pop(key, None)
        for template in _pod_templates(doc):
            annotations = template["metadata"].get("annotations", {})
            annotations.pop("checksum/config", None)
            if not annotations:
                template["metadata"].pop("annotations", None)
            _sort_named(template["spec"])
        out[(doc["kind"], doc["metadata"]["name"])] = doc
    return out


def normalisekustomize_build(docs: list[Doc]) -> dict[tuple[str, str], Doc]:
    out = {}
    for doc in docs:
        if doc["kind"] == "ConfigMap" and _HASHED_CONFIG.match(doc["metadata"]["name"]):
            doc["metadata"]["name"] = "ecvi-logs-config"
        for template in _pod_templates(doc):
            for volume in template["spec"].get("volumes", []):
                if "configMap" in volume and _HASHED_CONFIG.match(volume["configMap"]["name"]):
                    volume["configMap"]["name"] = "ecvi-logs-config"
            _sort_named(template["spec"])
        out[(doc["kind"], doc["metadata"]["name"])] = doc
    return out


def differences(chart: dict[tuple[str, str], Doc], kust: dict[tuple[str, str], Doc]) -> list[str]:
    """Each object missing on one side, and each top-level field that differs, as one line."""
    problems = [f"only in the chart: {k}" for k in sorted(chart.keys() - kust.keys())]
    problems += [f"only in kustomize: {k}" for k in sorted(kust.keys() - chart.keys())]
    for key in sorted(chart.keys() & kust.keys()):
        a, b = chart[key], kust[key]
        for field in sorted(a.keys() | b.keys()):
            if a.get(field) != b.get(field):
                problems.append(f"{key} {field}:\n  chart:     {json.dumps(a.get(field), sort_keys=True)[:1500]}\n"
                                f"  kustomize: {json.dumps(b.get(field), sort_keys=True)[:1500]}")
    return problems


@pytest.fixture(scope="module", params=OVERLAYS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.timeout(3600)
def test_chart_lints_strict(helm: Path, backend: str) -> None:
    proc = _run_helm(helm, "lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION, "--set",
                     f"backend={backend}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


@pytest.mark.timeout(3600)
def test_chart_renders_valid_manifests(helm: Path, backend: str, tmp_path: Path) -> None:
    # Helm's own text, not a re-dump: the API server reads that (PyYAML would re-read 1e+06 as text).
    text = render_text(helm, backend, overlay_values(backend), tmp=tmp_path)
    docs = [d for d in yaml.safe_load_all(text) if d]
    manifest = tmp_path / "chart.yaml"
    manifest.write_text(text)
    assert_kubeconform_valid(manifest, len(docs))
    assert len(docs) == 14


@pytest.mark.timeout(3600)
def test_chart_renders_what_kustomize_renders(helm: Path, backend: str, tmp_path: Path) -> None:
    chart = normalise_helm(render(helm, backend, overlay_values(backend), tmp=tmp_path))
    kust = normalisekustomize_build(kustomize_build(backend))
    assert differences(chart, kust) == []
    # The config text itself, byte for byte (comments too): the copy the chart reads is the overlay's.
    text = chart[("ConfigMap", "ecvi-logs-config")]["data"]["shipper.yaml"]
    assert text == kust[("ConfigMap", "ecvi-logs-config")]["data"]["shipper.yaml"]
    assert f"type: {backend}" in text


@pytest.mark.timeout(3600)
def test_the_comparison_sees_a_changed_field(helm: Path, tmp_path: Path) -> None:
    values = overlay_values("loki") | {"image": {"tag": "0.1.1"}, "archive": {"days": 31}}
    chart = normalise_helm(render(helm, "loki", values, tmp=tmp_path))
    found = differences(chart, normalisekustomize_build(kustomize_build("loki")))
    assert len(found) == 2, found
    assert found[0].startswith("('CronJob', 'ecvi-logs-archive') spec:") and '"31"' in found[0]
    assert found[1].startswith("('DaemonSet', 'ecvi-logs') spec:") and "ecvi-logs:0.1.1" in found[1]


def test_chart_files_are_the_generated_copies() -> None:
    proc = subprocess.run([sys.executable, str(DEPLOY / "generate.py"), "--check"], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (CHART / "files").iterdir()) == sorted(
        ["alerts.yaml", *(f"shipper-{o}.yaml" for o in OVERLAYS)]
    )
    assert (CHART / "files" / "alerts.yaml").read_text() == (DEPLOY / "prometheus" / "alerts.yaml").read_text()


def _by_kind(docs: list[Doc]) -> dict[tuple[str, str], Doc]:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def _shipper(docs: dict[tuple[str, str], Doc]) -> Doc:
    container: Doc = docs[("DaemonSet", "ecvi-logs")]["spec"]["template"]["spec"]["containers"][0]
    return container


@pytest.mark.timeout(3600)
def test_toggles_remove_their_objects(helm: Path, tmp_path: Path) -> None:
    off = {"archive": {"enabled": False}, "serviceMonitor": {"enabled": False},
           "prometheusRule": {"enabled": False}, "rbac": {"create": False}, "networkPolicy": {"enabled": False},
           "priorityClass": {"create": False, "name": "system-node-critical"},
           "forward": {"hostPort": {"enabled": False}, "service": {"enabled": False}}}
    docs = _by_kind(render(helm, "loki", off, tmp=tmp_path))
    assert sorted(docs) == [("ConfigMap", "ecvi-logs-config"), ("DaemonSet", "ecvi-logs"), ("Service", "ecvi-logs"),
                            ("ServiceAccount", "ecvi-logs")]
    pod = docs[("DaemonSet", "ecvi-logs")]["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == "system-node-critical"
    assert {p["name"]: p.get("hostPort") for p in _shipper(docs)["ports"]} == {"metrics": None, "forward": None}


@pytest.mark.timeout(3600)
def test_values_reach_the_pods(helm: Path, tmp_path: Path) -> None:
    values: dict[str, Any] = {
        "image": {"repository": "example.org/logs", "tag": "9.9.9", "pullPolicy": "Always"},
        "credentials": {"existingSecret": "my-creds"},
        "extraEnv": [{"name": "ES_API_KEY", "valueFrom": {"secretKeyRef": {"name": "es", "key": "api-key"}}}],
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "2", "memory": "512Mi"}},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "logs", "effect": "NoSchedule"}],
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["a"]}]}]}}},
        "forward": {"hostPort": {"port": 24225}},
        "archive": {"schedule": "0 4 * * *", "bucket": {"secretName": "bucket", "secretKey": "NAME"}},
        "elasticsearch": {"caSecret": "es-ca-2"},
    }
    docs = _by_kind(render(helm, "elasticsearch", values, tmp=tmp_path))
    pod = docs[("DaemonSet", "ecvi-logs")]["spec"]["template"]["spec"]
    shipper = _shipper(docs)
    assert shipper["image"] == "example.org/logs:9.9.9" and shipper["imagePullPolicy"] == "Always"
    assert shipper["envFrom"] == [{"secretRef": {"name": "my-creds", "optional": True}}]
    assert shipper["env"][-1] == values["extraEnv"][0]
    assert shipper["resources"] == values["resources"]
    assert {p["name"]: p.get("hostPort") for p in shipper["ports"]} == {"metrics": None, "forward": 24225}
    assert pod["tolerations"] == values["tolerations"] and pod["nodeSelector"] == values["nodeSelector"]
    assert pod["affinity"] == values["affinity"]
    assert {"name": "es-ca", "secret": {"secretName": "es-ca-2"}} in pod["volumes"]
    cron = docs[("CronJob", "ecvi-logs-archive")]["spec"]
    assert cron["schedule"] == "0 4 * * *"
    job_pod = cron["jobTemplate"]["spec"]["template"]["spec"]
    [archive] = job_pod["initContainers"]
    assert archive["env"][0]["valueFrom"] == {"secretKeyRef": {"name": "bucket", "key": "NAME"}}
    assert archive["image"] == job_pod["containers"][0]["image"] == "example.org/logs:9.9.9"
    assert all(c["envFrom"] == [{"secretRef": {"name": "my-creds"}}] for c in [archive, *job_pod["containers"]])


@pytest.mark.timeout(3600)
def test_config_override_replaces_the_backend_config(helm: Path, tmp_path: Path) -> None:
    text = (DEPLOY / "compose" / "shipper.yaml").read_text()
    docs = _by_kind(render(helm, "loki", {"config": {"override": text}}, tmp=tmp_path))
    assert docs[("ConfigMap", "ecvi-logs-config")]["data"]["shipper.yaml"] == text
    plain = _by_kind(render(helm, "loki", tmp=tmp_path))
    checksums = [d[("DaemonSet", "ecvi-logs")]["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
                 for d in (docs, plain)]
    assert checksums[0] != checksums[1]


@pytest.mark.parametrize("values, message", [
    ({"backend": "splunk"}, "value must be one of 'loki', 'elasticsearch', 'cloudwatch'"),
    ({"imagee": {"tag": "x"}}, "additional properties 'imagee' not allowed"),
    ({"forward": {"hostPort": {"port": 70000}}}, "maximum"),
])
@pytest.mark.timeout(3600)
def test_schema_refuses_bad_values(helm: Path, tmp_path: Path, values: dict[str, Any], message: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(values))
    proc = _run_helm(helm, "template", "x", str(CHART), "--kube-version", KUBE_VERSION, "-f", str(bad))
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr


def _documented_keys(schema: Doc, prefix: str = "") -> list[str]:
    """Dotted paths of every value: objects with declared properties are walked, the rest are leaves."""
    keys: list[str] = []
    for name, sub in schema["properties"].items():
        path = prefix + name
        keys += _documented_keys(sub, path + ".") if "properties" in sub else [path]
    return keys


def _value_keys(values: Doc, schema: Doc, prefix: str = "") -> list[str]:
    keys: list[str] = []
    for name, value in values.items():
        sub = schema["properties"].get(name, {})
        if isinstance(value, dict) and "properties" in sub:
            keys += _value_keys(value, sub, prefix + name + ".")
        else:
            keys.append(prefix + name)
    return keys


def test_every_value_is_in_the_schema_and_the_docs() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    documented = _documented_keys(schema)
    assert sorted(_value_keys(values, schema)) == sorted(documented)
    docs = (REPO / "docs" / "deploy.md").read_text().split("\n## Helm chart\n", 1)[1].split("\n## ", 1)[0]
    table = {m.group(1) for m in re.finditer(r"^\| `([A-Za-z.]+)` \|", docs, re.MULTILINE)}
    assert sorted(set(documented) - table) == []
    assert sorted(table - set(documented)) == []
