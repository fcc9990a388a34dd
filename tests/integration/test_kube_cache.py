"""The Kubernetes metadata cache against a real kube-apiserver, with only the shipper's ClusterRole.

The token is bound to exactly the ClusterRole shipped in deploy/kubernetes/base/rbac.yaml, so these
tests also prove that role is enough (and the cache asks for nothing more). Every test uses its own
node name and namespaces, so tests do not see each other's pods.
"""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from shipper import metrics
from shipper.kube import KubeClient, KubeMetadataCache
from shipper.kube.access import in_cluster_access
from tests.shipper.kube._fakeapi import realistic_pod_fields

if TYPE_CHECKING:
    from tests.services.kube import KubeAPIServer as Kube

pytestmark = pytest.mark.integration

RBAC = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "base" / "rbac.yaml"


def shipper_cluster_role() -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(RBAC.read_text()) if d]
    role = next(d for d in docs if d["kind"] == "ClusterRole")
    assert role["metadata"]["name"] == "ecvi-logs-shipper"
    return role


@pytest.fixture
def shipper_token(kube: Kube) -> str:
    return kube.user_token(shipper_cluster_role())


def run(coro: Awaitable[Any], timeout: float = 120) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def until(pred: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> float:
    start = time.monotonic()
    while not pred():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what} not reached within {timeout} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


def api_up() -> float | None:
    return metrics.REGISTRY.get_sample_value("ecvi_shipper_kube_api_up")


def names() -> tuple[str, str]:
    run_id = uuid.uuid4().hex[:8]
    return f"node-{run_id}", f"kc-{run_id}"


def test_this_nodes_pods_are_cached_with_labels_annotations_owner_and_images(kube: Kube, shipper_token: str,
                                                                             tmp_path: Path) -> None:
    node, ns = names()
    kube.create_namespace(ns, labels={"team": "payments"}, annotations={"ecvi-logs.io/exclude": "true"})
    kube.create_pod(ns, "web-5f6d8c9b7-x2x4q", node_name=node,
                    labels={"app": "web", "pod-template-hash": "5f6d8c9b7"},
                    annotations={"prometheus.io/scrape": "true", "ecvi-logs.io/exclude-containers": "envoy",
                                 "kubectl.kubernetes.io/last-applied-configuration": "{}"},
                    containers={"app": "registry.example.com/web:2.1", "envoy": "envoyproxy/envoy:v1.30.1"},
                    owner=("ReplicaSet", "web-5f6d8c9b7"))
    kube.create_pod(ns, "db-0", node_name=node, owner=("StatefulSet", "db"), containers={"pg": "postgres:16"})
    kube.create_pod(ns, "elsewhere", node_name=f"{node}-other")
    client = KubeClient.from_kubeconfig(kube.kubeconfig(tmp_path / "kubeconfig", token=shipper_token))

    async def go() -> None:
        cache = KubeMetadataCache(client, node_name=node, max_pods=100, delete_grace_secs=60.0)
        await cache.start()
        try:
            assert await cache.wait_synced(timeout=15.0)
            web = cache.pod(ns, "web-5f6d8c9b7-x2x4q")
            assert web is not None and not web.deleted and web.node_name == node and web.uid
            assert dict(web.labels) == {"app": "web", "pod-template-hash": "5f6d8c9b7"}
            assert dict(web.annotations) == {"prometheus.io/scrape": "true",
                                             "ecvi-logs.io/exclude-containers": "envoy"}
            assert dict(web.containers) == {"app": "registry.example.com/web:2.1",
                                            "envoy": "envoyproxy/envoy:v1.30.1"}
            assert (web.owner_kind, web.owner_name) == ("Deployment", "web")
            db = cache.pod(ns, "db-0")
            assert db is not None and (db.owner_kind, db.owner_name) == ("StatefulSet", "db")
            assert cache.pod(ns, "elsewhere") is None  # another node's pod is not even listed
            namespace = cache.namespace(ns)
            assert namespace is not None and namespace.labels.get("team") == "payments"
            assert dict(namespace.annotations) == {"ecvi-logs.io/exclude": "true"}
            assert api_up() == 1
        finally:
            await cache.stop()

    run(go())


def test_relabel_and_delete_are_seen_and_a_deleted_pod_is_kept_for_the_grace(kube: Kube,
                                                                              shipper_token: str) -> None:
    node, ns = names()
    kube.create_namespace(ns)
    kube.create_pod(ns, "worker", node_name=node, labels={"app": "worker", "version": "1"})
    client = KubeClient(kube.url, token=shipper_token, ca_file=kube.ca_file)

    async def go() -> None:
        cache = KubeMetadataCache(client, node_name=node, delete_grace_secs=3.0)
        await cache.start()
        try:
            assert await cache.wait_synced(timeout=15.0)
            generation = cache.generation
            kube.patch_pod(ns, "worker", labels={"version": "2"})
            took = await until(lambda: (p := cache.pod(ns, "worker")) is not None and p.labels.get("version") == "2",
                               timeout=5.0, what="relabel")
            assert cache.generation > generation
            print(f"relabel seen after {took:.3f} s")
            kube.create_pod(ns, "late", node_name=node)
            await until(lambda: cache.pod(ns, "late") is not None, timeout=5.0, what="new pod")

            kube.delete_pod(ns, "worker")
            await until(lambda: (p := cache.pod(ns, "worker")) is not None and p.deleted, timeout=10.0,
                        what="deletion")
            deleted_at = time.monotonic()
            pod = cache.pod(ns, "worker")
            assert pod is not None and pod.labels.get("app") == "worker"  # still there for its last lines
            await until(lambda: cache.pod(ns, "worker") is None, timeout=10.0, what="grace expiry")
            assert time.monotonic() - deleted_at >= 2.5
        finally:
            await cache.stop()

    run(go())


def test_an_api_server_outage_keeps_the_cache_serving_and_it_catches_up_after(kube: Kube,
                                                                              shipper_token: str) -> None:
    node, ns = names()
    kube.create_namespace(ns)
    kube.create_pod(ns, "steady", node_name=node, labels={"app": "steady"})
    kube.create_pod(ns, "changes", node_name=node, labels={"v": "1"})
    client = KubeClient(kube.url, token=shipper_token, ca_file=kube.ca_file)

    async def go() -> None:
        cache = KubeMetadataCache(client, node_name=node, backoff_initial_secs=0.2, backoff_max_secs=2.0)
        await cache.start()
        try:
            assert await cache.wait_synced(timeout=15.0)
            assert api_up() == 1
            # Called on the loop's own thread, on purpose: the fixture's processes die with the thread
            # that started them, so kube.start() must not run in a worker thread.
            kube.stop()
            await until(lambda: api_up() == 0, timeout=15.0, what="kube_api_up 0")
            await asyncio.sleep(1.0)  # several failed attempts
            steady = cache.pod(ns, "steady")
            assert steady is not None and not steady.deleted and steady.labels.get("app") == "steady"
            kube.start()  # blocks the loop: the changes below are made before the cache can reconnect
            kube.patch_pod(ns, "changes", labels={"v": "2"})
            kube.create_pod(ns, "after", node_name=node)
            await until(lambda: cache.pod(ns, "after") is not None, timeout=20.0, what="pod created after restart")
            await until(lambda: cache.pod(ns, "changes").labels.get("v") == "2",  # type: ignore[union-attr]
                        timeout=10.0, what="relabel after restart")
            took = await until(lambda: api_up() == 1, timeout=10.0, what="kube_api_up 1")
            assert not cache.pod(ns, "steady").deleted  # type: ignore[union-attr]
            restarts = {r: metrics.REGISTRY.get_sample_value("ecvi_shipper_kube_watch_restarts_total",
                                                             {"kind": "pod", "reason": r}) for r in ("gone", "error")}
            print(f"caught up {took:.1f} s after the restart; pod watch restarts {restarts}")
        finally:
            await cache.stop()

    run(go())


def test_in_cluster_service_account_with_a_rotated_token(kube: Kube, shipper_token: str, tmp_path: Path) -> None:
    node, ns = names()
    kube.create_namespace(ns)
    kube.create_pod(ns, "p", node_name=node)
    sa = tmp_path / "serviceaccount"
    sa.mkdir()
    assert kube.ca_file is not None
    (sa / "ca.crt").write_bytes(Path(kube.ca_file).read_bytes())
    (sa / "token").write_text("not-a-valid-token")
    port = kube.url.rsplit(":", 1)[1]
    access = in_cluster_access({"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": port}, sa)
    client = KubeClient.from_access(access)

    async def go() -> None:
        cache = KubeMetadataCache(client, node_name=node, backoff_initial_secs=0.1, backoff_max_secs=0.5)
        await cache.start()
        try:
            assert not await cache.wait_synced(timeout=1.0)  # 401: retried, never raised
            assert api_up() == 0
            (sa / "token").write_text(shipper_token + "\n")  # the kubelet rotates the projected token
            assert await cache.wait_synced(timeout=10.0)
            assert cache.pod(ns, "p") is not None
        finally:
            await cache.stop()

    run(go())


def test_memory_per_thousand_cached_pods(kube: Kube, shipper_token: str) -> None:
    node, prefix = names()
    namespaces = [f"{prefix}-{i}" for i in range(10)]
    for ns in namespaces:
        kube.create_namespace(ns)
    for i in range(1000):
        fields = realistic_pod_fields(i, replicas=20)
        kube.create_pod(namespaces[i // 20 % 10], fields["name"], node_name=node, labels=fields["labels"],
                        annotations=fields["annotations"], containers=fields["containers"], owner=fields["owner"])
    client = KubeClient(kube.url, token=shipper_token, ca_file=kube.ca_file)

    async def go() -> int:
        gc.collect()
        tracemalloc.start()
        try:
            cache = KubeMetadataCache(client, node_name=node)
            baseline = tracemalloc.take_snapshot()
            await cache.start()
            assert await cache.wait_synced(timeout=60.0)
            assert sum(cache.pod(namespaces[i // 20 % 10], realistic_pod_fields(i)["name"]) is not None
                       for i in range(1000)) == 1000
            gc.collect()
            held = tracemalloc.take_snapshot().compare_to(baseline, "filename")
            await cache.stop()
        finally:
            tracemalloc.stop()
        # What the cache's own code keeps (parsed strings, mappings, PodInfo, store); not httpx's buffers.
        return sum(s.size_diff for s in held if "/shipper/kube/" in str(s.traceback[0].filename))

    held = run(go(), timeout=180)
    print(f"kube metadata cache: {held} bytes for 1000 pods (10 labels, 5 annotations, 2 containers each)")
    assert held < 2_000_000
