"""The kube fixture is a real API server: RBAC is enforced, field selectors work, data survives a restart."""

from __future__ import annotations

import ssl
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from tests.services.kube import KubeAPIServer

pytestmark = pytest.mark.integration

READ_PODS_AND_NAMESPACES = {
    "rules": [{"apiGroups": [""], "resources": ["pods", "namespaces"], "verbs": ["get", "list", "watch"]}],
}


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_reader_lists_its_node_pods_and_cannot_create(kube: KubeAPIServer) -> None:
    ns, node = _name("ecvi-smoke"), _name("node")
    kube.create_namespace(ns, labels={"team": "logs"})
    created = kube.create_pod(ns, "mine", node_name=node, labels={"app": "api"},
                              containers={"api": "ecvi/api:1.2"}, owner=("ReplicaSet", "api-5d8f7c9b6d"))
    kube.create_pod(ns, "other", node_name=_name("node"))
    assert created["spec"]["nodeName"] == node
    assert created["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
    token = kube.user_token(READ_PODS_AND_NAMESPACES)
    assert token != kube.admin_token

    with kube.client(token) as reader:
        listed = reader.get("/api/v1/pods", params={"fieldSelector": f"spec.nodeName={node}"})
        assert listed.status_code == 200, listed.text
        pods = listed.json()["items"]
        assert [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in pods] == [(ns, "mine")]
        assert pods[0]["status"]["phase"] == "Pending"  # no kubelet
        assert reader.get(f"/api/v1/namespaces/{ns}").json()["metadata"]["labels"]["team"] == "logs"

        denied = reader.post(f"/api/v1/namespaces/{ns}/pods", json={
            "metadata": {"name": "intruder"},
            "spec": {"nodeName": node, "containers": [{"name": "x", "image": "x"}]},
        })
        assert denied.status_code == 403, denied.text
        assert reader.get("/api/v1/secrets").status_code == 403
    with kube.client() as admin:
        assert admin.get(f"/api/v1/namespaces/{ns}/pods/intruder").status_code == 404


def test_anonymous_and_unknown_tokens_are_refused(kube: KubeAPIServer) -> None:
    with kube.client("not-a-token") as stranger:
        assert stranger.get("/api/v1/pods").status_code == 401
    with kube.client() as admin:
        anonymous = admin.get("/api/v1/pods", headers={"Authorization": ""})
    assert anonymous.status_code in (401, 403), anonymous.text


def test_patch_and_delete_are_seen_by_a_watch(kube: KubeAPIServer) -> None:
    ns, node = _name("ecvi-watch"), _name("node")
    kube.create_namespace(ns)
    pod = kube.create_pod(ns, "p", node_name=node, annotations={"a": "1"})
    version = pod["metadata"]["resourceVersion"]
    patched = kube.patch_pod(ns, "p", labels={"tier": "web"}, annotations={"a": None, "b": "2"})
    assert patched["metadata"]["labels"] == {"tier": "web"}
    assert patched["metadata"]["annotations"] == {"b": "2"}
    kube.patch_namespace(ns, labels={"env": "test"})
    kube.delete_pod(ns, "p")

    events = []
    with kube.client(timeout=30) as admin, admin.stream("GET", f"/api/v1/namespaces/{ns}/pods", params={
            "watch": "1", "resourceVersion": version, "timeoutSeconds": "5"}) as stream:
        for line in stream.iter_lines():
            event = yaml.safe_load(line)
            meta = event["object"]["metadata"]
            events.append((event["type"], meta.get("labels"), "deletionTimestamp" in meta))
            if event["type"] == "DELETED":
                break
    # Deleting a pod bound to a node first marks it (deletionTimestamp), then removes it.
    assert events == [("MODIFIED", {"tier": "web"}, False), ("MODIFIED", {"tier": "web"}, True),
                      ("DELETED", {"tier": "web"}, True)]
    with kube.client() as admin:
        assert admin.get(f"/api/v1/namespaces/{ns}").json()["metadata"]["labels"]["env"] == "test"


def test_kubeconfig_names_server_ca_and_token(kube: KubeAPIServer, tmp_path: Path) -> None:
    token = kube.user_token(READ_PODS_AND_NAMESPACES)
    config = yaml.safe_load(kube.kubeconfig(tmp_path / "config", token=token).read_text())
    cluster = config["clusters"][0]["cluster"]
    assert cluster["server"] == kube.url
    assert config["users"][0]["user"]["token"] == token
    verify = ssl.create_default_context(cafile=cluster["certificate-authority"])
    answer = httpx.get(f"{cluster['server']}/api/v1/namespaces", verify=verify,
                       headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert answer.status_code == 200, answer.text


def test_external_server_hands_out_service_account_tokens(kube: KubeAPIServer) -> None:
    external = KubeAPIServer(url=kube.url, token=kube.admin_token,
                             ca_file=str(kube.ca_file) if kube.ca_file else None)
    external.start()
    token = external.user_token(READ_PODS_AND_NAMESPACES)
    with external.client(token) as reader:
        assert reader.get("/api/v1/namespaces").status_code == 200
        assert reader.delete("/api/v1/namespaces/default").status_code == 403
    with pytest.raises(pytest.skip.Exception):
        external.stop()


def test_restart_keeps_url_and_objects(kube: KubeAPIServer) -> None:
    ns = _name("ecvi-restart")
    kube.create_namespace(ns)
    kube.create_pod(ns, "survivor", node_name="node-a", labels={"keep": "yes"})
    token = kube.user_token(READ_PODS_AND_NAMESPACES)
    url = kube.url

    kube.stop()
    with pytest.raises(httpx.ConnectError), kube.client() as admin:
        admin.get("/readyz")
    kube.start()

    assert kube.url == url
    with kube.client(token) as reader:
        pod = reader.get(f"/api/v1/namespaces/{ns}/pods/survivor")
        assert pod.status_code == 200, pod.text
        assert pod.json()["metadata"]["labels"] == {"keep": "yes"}
