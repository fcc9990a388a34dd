"""The shipper against a real kube-apiserver: API metadata on delivered events, relabels, deletions, outages.

The shipper (file source -> file sink, in process) reads kubelet-shaped CRI files under a temporary
``containers`` directory and the API with a token bound to exactly the ClusterRole of
deploy/kubernetes/base/rbac.yaml, so these tests also prove that role is enough.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pytest
import yaml

from shipper.config import parse_config
from shipper.topology import Topology
from tests.factories import cri_line

if TYPE_CHECKING:
    from tests.services.kube import KubeAPIServer

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

RBAC = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "base" / "rbac.yaml"
CID = "d" * 64


def shipper_cluster_role() -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(RBAC.read_text()) if d]
    return next(d for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "ecvi-logs-shipper")


class Node:
    """A tmp ``/var/log/containers``-shaped directory and the shipper's file sink output."""

    def __init__(self, tmp_path: Path, kubeconfig: Path, node: str) -> None:
        self.logs = tmp_path / "containers"
        self.logs.mkdir()
        self.out = tmp_path / "out" / "events.ndjson"
        self.config = f"""
data_dir: {tmp_path}/data
api: {{address: "127.0.0.1:0", enabled: false}}
checkpoint_interval_secs: 0.1
sources:
  containers:
    type: file
    format: cri
    include: ["{self.logs}/*.log"]
    glob_interval_secs: 0.05
    poll_interval_secs: 0.02
    kubernetes_api: {{node_name: "{node}", kubeconfig: "{kubeconfig}"}}
sinks:
  out: {{type: file, inputs: [containers], path: "{self.out}", encoding: event, healthcheck: false,
         batch: {{max_events: 100, timeout_secs: 0.02}}}}
"""

    def write(self, pod: str, ns: str, container: str, *lines: str) -> None:
        with (self.logs / f"{pod}_{ns}_{container}-{CID}.log").open("a") as f:
            f.write("".join(cri_line(line) for line in lines))

    def events(self) -> dict[str, dict[str, Any]]:
        """Delivered events by message (each test line is unique)."""
        if not self.out.exists():
            return {}
        out = {}
        for raw in self.out.read_bytes().splitlines():
            e = orjson.loads(raw)
            out[str(e["record"].get("message"))] = e
        return out


async def until(cond: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.05)


async def probe_until(node: Node, pod: str, ns: str, prefix: str, cond: Callable[[dict[str, Any]], bool],
                      timeout: float = 20.0) -> int:
    """Write ``prefix-N`` lines until one is delivered with ``cond(event)``; returns that N.

    The API's change reaches the shipper through a watch, some time after the call returned.
    """
    end = time.monotonic() + timeout
    n = 0
    while time.monotonic() < end:
        node.write(pod, ns, "backend", f"{prefix}-{n}")
        await asyncio.sleep(0.2)
        for i in range(n + 1):
            e = node.events().get(f"{prefix}-{i}")
            if e is not None and cond(e):
                return i
        n += 1
    raise AssertionError(f"{prefix}: no event met the condition within {timeout} s")


@pytest.fixture
def names() -> tuple[str, str]:
    run = uuid.uuid4().hex[:8]
    return f"node-{run}", f"km-{run}"


async def test_api_metadata_relabel_deletion_and_outage(kube: KubeAPIServer, tmp_path: Path,
                                                        names: tuple[str, str]) -> None:
    node_name, ns = names
    token = kube.user_token(shipper_cluster_role())
    kubeconfig = kube.kubeconfig(tmp_path / "kubeconfig", token)
    kube.create_namespace(ns, labels={"team": "payments"})
    kube.create_namespace(f"{ns}-quiet", annotations={"ecvi-logs.io/exclude": "true"})
    api = kube.create_pod(ns, "api-7d9f-x2x4k", node_name=node_name,
                          labels={"app.kubernetes.io/name": "api", "pod-template-hash": "7d9f", "version": "v1"},
                          annotations={"team.io/owner": "alice"}, containers={"backend": "reg/api:1.2"},
                          owner=("ReplicaSet", "api-7d9f"))
    kube.create_pod(ns, "muted", node_name=node_name, annotations={"ecvi-logs.io/exclude": "true"},
                    containers={"backend": "reg/m:1"})
    kube.create_pod(ns, "sidecars", node_name=node_name, containers={"backend": "reg/b:1", "proxy": "reg/p:1"},
                    annotations={"ecvi-logs.io/exclude-containers": "proxy"})
    kube.create_pod(f"{ns}-quiet", "anything", node_name=node_name)
    kube.create_pod(ns, "elsewhere", node_name="another-node")  # not this node's: not cached

    node = Node(tmp_path, kubeconfig, node_name)
    node.write("api-7d9f-x2x4k", ns, "backend", "api-1", "api-2")
    node.write("muted", ns, "backend", "muted-1")
    node.write("sidecars", ns, "backend", "sidecar-backend-1")
    node.write("sidecars", ns, "proxy", "sidecar-proxy-1")
    node.write("anything", f"{ns}-quiet", "backend", "quiet-ns-1")
    node.write("elsewhere", ns, "backend", "elsewhere-1")

    topo = Topology(parse_config(node.config))
    await topo.start()
    try:
        await until(lambda: {"api-1", "api-2", "sidecar-backend-1", "elsewhere-1"} <= set(node.events()),
                    "first lines delivered")
        events = node.events()
        k8s = events["api-1"]["meta"]["kubernetes"]
        assert k8s == {
            "namespace": ns, "pod_name": "api-7d9f-x2x4k", "container_name": "backend", "container_id": CID,
            "pod_labels": {"app.kubernetes.io/name": "api", "pod-template-hash": "7d9f", "version": "v1"},
            "pod_annotations": {"team.io/owner": "alice"}, "namespace_labels": {
                **k8s["namespace_labels"], "team": "payments"},
            "node_name": node_name, "pod_uid": api["metadata"]["uid"], "container_image": "reg/api:1.2",
            "owner_kind": "Deployment", "owner_name": "api",
        }
        assert "kubernetes_enrichment" not in events["api-1"]["meta"]
        assert events["elsewhere-1"]["meta"]["kubernetes_enrichment"] == "missing"
        await asyncio.sleep(0.5)
        assert not {"muted-1", "sidecar-proxy-1", "quiet-ns-1"} & set(node.events())  # excluded

        # Relabel: later events carry the new labels, earlier ones keep the old.
        kube.patch_pod(ns, "api-7d9f-x2x4k", labels={"version": "v2"})
        await probe_until(node, "api-7d9f-x2x4k", ns, "relabel",
                          lambda e: e["meta"]["kubernetes"]["pod_labels"]["version"] == "v2")
        node.write("api-7d9f-x2x4k", ns, "backend", "relabel-last")
        await until(lambda: "relabel-last" in node.events(), "a line after the relabel")
        events = node.events()
        assert events["api-2"]["meta"]["kubernetes"]["pod_labels"]["version"] == "v1"
        versions = [e["meta"]["kubernetes"]["pod_labels"]["version"] for m, e in events.items()
                    if m.startswith("relabel-")]  # in file order
        assert versions == sorted(versions) and versions[-1] == "v2"  # v1 ... then v2 for good

        # Deleted: its file's last lines are still shipped, with its metadata during the grace.
        kube.delete_pod(ns, "api-7d9f-x2x4k")
        await asyncio.sleep(1.0)
        node.write("api-7d9f-x2x4k", ns, "backend", "after-delete")
        await until(lambda: "after-delete" in node.events(), "a deleted pod's line")
        assert node.events()["after-delete"]["meta"]["kubernetes"]["pod_labels"]["version"] == "v2"

        # API down: lines still shipped; a pod the cache never saw is flagged.
        kube.stop()
        node.write("sidecars", ns, "backend", "during-outage")
        node.write("newcomer", ns, "backend", "newcomer-1")
        await until(lambda: {"during-outage", "newcomer-1"} <= set(node.events()), "lines during the outage")
        events = node.events()
        assert events["during-outage"]["meta"]["kubernetes"]["container_image"] == "reg/b:1"
        assert events["newcomer-1"]["meta"]["kubernetes_enrichment"] == "missing"
        assert events["newcomer-1"]["meta"]["kubernetes"]["pod_name"] == "newcomer"
    finally:
        await topo.stop(timeout=5)
