"""`render vector` of a file source with ``kubernetes_api`` and of templates with alternatives and label keys."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from pipelines import vrl
from pipelines.cli import render
from shipper.event import Event
from shipper.templates import render as shipper_render
from tests.tools.locate import pyvrl_dir

APP_NAME = "{{ kubernetes.pod_labels.app.kubernetes.io/name | default(service) | default(\"web\") }}"
CONFIG = """\
data_dir: ./var/shipper
sources:
  containers:
    type: file
    format: cri
    include: [/var/log/containers/*.log]
    kubernetes_api:
      node_name: "${NODE_NAME}"
      kubeconfig: /etc/ecvi/kubeconfig
      delete_grace_secs: 30
sinks:
  loki:
    type: loki
    inputs: [containers]
    endpoint: http://127.0.0.1:3100
    labels:
      app: 'APP_NAME'
      namespace: "{{ kubernetes.namespace }}"
  es:
    type: elasticsearch
    inputs: [containers]
    endpoint: http://127.0.0.1:9200
    index: 'logs-APP_NAME-%Y.%m.%d'
""".replace("APP_NAME", APP_NAME)


@pytest.fixture(scope="module")
def pyvrl() -> Any:
    sys.path.insert(0, str(pyvrl_dir()))
    import pyvrl as module

    return module


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    path = tmp_path_factory.mktemp("cfg") / "shipper.yaml"
    path.write_text(CONFIG)
    result = CliRunner().invoke(render, ["vector", "--config", str(path)], env={"NODE_NAME": "node-a"})
    assert result.exit_code == 0, result.output
    return result.output, yaml.safe_load(result.output)


def test_kubernetes_api_renders_as_kubernetes_logs(rendered: tuple[str, dict[str, Any]]) -> None:
    text, out = rendered
    src = out["sources"]["containers"]
    assert src["type"] == "kubernetes_logs"
    assert src["self_node_name"] == "${NODE_NAME}"  # the config's reference, for Vector to resolve
    assert src["kube_config_file"] == "/etc/ecvi/kubeconfig"
    assert src["delay_deletion_ms"] == 30_000
    assert src["extra_namespace_label_selector"] == "ecvi-logs.io/exclude!=true"
    # What kubernetes_logs cannot do is said, not silently dropped.
    assert "sources.containers.kubernetes_api: a namespace is excluded by the label" in text
    assert "sources.containers.kubernetes_api.max_pods: no kubernetes_logs equivalent" in text
    assert out["transforms"]["containers_exclude"]["inputs"] == ["containers_parse"]
    assert out["transforms"]["loki_prepare"]["inputs"] == ["containers_exclude"]


def test_without_kubernetes_api_the_file_source_stays(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG.replace("    kubernetes_api:\n      node_name: \"${NODE_NAME}\"\n"
                                   "      kubeconfig: /etc/ecvi/kubeconfig\n      delete_grace_secs: 30\n", ""))
    result = CliRunner().invoke(render, ["vector", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.output)["sources"]["containers"]["type"] == "file"


def test_exclusion_filter_drops_what_the_shipper_does_not_ship(rendered: tuple[str, dict[str, Any]],
                                                               pyvrl: Any) -> None:
    source = rendered[1]["transforms"]["containers_exclude"]["condition"]["source"]
    keep = pyvrl.Transform(f".keep = {source}\n.")

    def kept(annotations: dict[str, str], container: str = "backend") -> bool:
        k8s = {"container_name": container, "pod_annotations": annotations}
        return bool(keep.remap({"kubernetes": k8s})["keep"])

    assert kept({})
    assert not kept({"ecvi-logs.io/exclude": "true"})
    assert not kept({"ecvi-logs.io/exclude": " True "})
    assert kept({"ecvi-logs.io/exclude": "false"})
    assert not kept({"ecvi-logs.io/exclude-containers": "sidecar, backend"})
    assert kept({"ecvi-logs.io/exclude-containers": "sidecar,backend-2"})
    assert bool(keep.remap({"message": "no metadata"})["keep"])  # unknown pods are shipped


def test_computed_template_fields_match_the_shipper(rendered: tuple[str, dict[str, Any]], pyvrl: Any) -> None:
    out = rendered[1]
    loki = out["sinks"]["loki"]
    assert loki["labels"] == {"app": "{{ ecvi_template_0 }}", "namespace": "{{ kubernetes.namespace }}"}
    assert loki["encoding"]["except_fields"] == ["ecvi_template_0"]
    assert out["sinks"]["es"]["bulk"]["index"] == "logs-{{ ecvi_template_0 }}-%Y.%m.%d"
    prepare = pyvrl.Transform(out["transforms"]["loki_prepare"]["source"] + "\n.")
    cases: list[dict[str, Any]] = [
        {"kubernetes": {"namespace": "shop", "pod_labels": {"app.kubernetes.io/name": "checkout"}}},
        {"kubernetes": {"namespace": "shop", "pod_labels": {}}, "service": "billing"},
        {"kubernetes": {"namespace": "shop", "pod_labels": {"app.kubernetes.io/name": ""}}, "service": ""},
    ]
    for record in cases:
        event = Event(dict(record), "", 0, {"kubernetes": record["kubernetes"]})
        assert prepare.remap(dict(record))["ecvi_template_0"] == shipper_render(APP_NAME, event), record


def test_plain_templates_render_as_before() -> None:
    assert vrl.template("{{ kubernetes.namespace }}-x") == '(to_string(.kubernetes.namespace) ?? "") + "-x"'
    assert not vrl.needs_computing("kubernetes.pod_name")
    assert vrl.needs_computing("kubernetes.pod_labels.team")
    assert vrl.needs_computing("service | default(app)")


def test_kubernetes_logs_fields_get_the_shippers_names(pyvrl: Any) -> None:
    program = pyvrl.Transform(vrl.parse_program("c", "kubernetes_logs", "cri", True) + "\n.")
    out = program.remap({"message": "hi", "kubernetes": {
        "pod_namespace": "shop", "pod_name": "web-5d4f8-x", "container_name": "c", "pod_uid": "u",
        "container_id": "containerd://abc", "container_image": "reg/web:1", "pod_node_name": "node-a",
        "pod_labels": {"app.kubernetes.io/name": "web", "pod-template-hash": "5d4f8"},
        "pod_annotations": {"a": "b"}, "namespace_labels": {"team": "t"}, "pod_owner": "ReplicaSet/web-5d4f8"}})
    assert out["kubernetes"] == {
        "namespace": "shop", "pod_name": "web-5d4f8-x", "container_name": "c", "pod_uid": "u",
        "container_id": "containerd://abc", "container_image": "reg/web:1", "node_name": "node-a",
        "pod_labels": {"app.kubernetes.io/name": "web", "pod-template-hash": "5d4f8"},
        "pod_annotations": {"a": "b"}, "namespace_labels": {"team": "t"},
        "owner_kind": "Deployment", "owner_name": "web"}
    bare = program.remap({"message": "x", "kubernetes": {"pod_namespace": "s", "pod_name": "p",
                                                        "container_name": "c", "pod_owner": "StatefulSet/db"}})
    assert bare["kubernetes"] == {"namespace": "s", "pod_name": "p", "container_name": "c",
                                  "owner_kind": "StatefulSet", "owner_name": "db"}


def test_rendered_vrl_compiles(rendered: tuple[str, dict[str, Any]], pyvrl: Any) -> None:
    for name, t in rendered[1]["transforms"].items():
        source = t["source"] if t["type"] == "remap" else "ok = " + t["condition"]["source"]
        pyvrl.Transform(source.replace("$$", "$") + "\n.")  # raises with the VRL error
        assert name
