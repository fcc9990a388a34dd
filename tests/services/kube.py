"""A real Kubernetes API server (kube-apiserver + etcd, no kubelet) for the integration tests.

Both binaries come from `tests/tools/build_kube.sh` (cached as `$ECVI_CACHE_DIR/<tool>-<version>`;
`KUBE_APISERVER_BINARY` / `ETCD_BINARY` name others).  Everything listens on 127.0.0.1: etcd on
free ports with its data in the work dir, kube-apiserver with RBAC, a static token file (an admin
in `system:masters` and a pool of users with no rights) and a self-signed serving certificate
whose CA is `ca_file`.  The ServiceAccount admission plugin is off, so pods need no service
account; with no kubelet and no scheduler a pod created with `spec.nodeName` stays Pending.
`stop()`/`start()` restart only the API server: etcd, and so every object, survives.

External (`url` given, e.g. `KUBE_API_URL` + `KUBE_API_TOKEN` [+ `KUBE_API_CA`]): nothing is
started, `stop()` skips the test, and `user_token()` hands out service-account tokens instead.
"""

from __future__ import annotations

import os
import secrets
import ssl
import subprocess
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.services._process import ServiceError, ServiceProcess, free_port, tail
from tests.services._service import Service
from tests.tools.locate import kube_binary

USER_POOL = 32
USERS_NAMESPACE = "ecvi-test-users"
_OWNER_API_VERSIONS = {
    "ReplicaSet": "apps/v1", "Deployment": "apps/v1", "StatefulSet": "apps/v1", "DaemonSet": "apps/v1",
    "Job": "batch/v1", "CronJob": "batch/v1",
}
_OWNER_UIDS = uuid.UUID("6f1d8a52-0c1e-4f7e-9a57-ecf1e0c0d0e5")

Labels = Mapping[str, str | None]


class KubeAPIError(RuntimeError):
    """The API server refused a request the fixture made; the message has its status and answer."""

    def __init__(self, resp: httpx.Response) -> None:
        self.status_code = resp.status_code
        super().__init__(f"{resp.request.method} {resp.request.url.path} -> {resp.status_code}: {resp.text[:500]}")


def _json(resp: httpx.Response) -> dict[str, Any]:
    if resp.status_code >= 400:
        raise KubeAPIError(resp)
    body = resp.json()
    assert isinstance(body, dict), body
    return body


def _rsa_key_pem() -> bytes:
    """A new 2048-bit RSA private key (PEM) for signing service-account tokens."""
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
    except ImportError:  # cryptography comes with moto, not on its own: openssl does the same
        return subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
                              capture_output=True, check=True, timeout=60).stdout
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class KubeAPIServer(Service):
    """kube-apiserver on https://127.0.0.1:PORT over its own etcd; helpers speak its REST API."""

    name = "kube-apiserver"
    ready_timeout = 120.0

    def __init__(self, *, url: str | None = None, token: str | None = None, ca_file: str | None = None) -> None:
        if url and not token:
            raise ServiceError("an external Kubernetes API server (KUBE_API_URL) needs an admin token (KUBE_API_TOKEN)")
        super().__init__(url=url)
        self.admin_token = token or secrets.token_hex(16)
        self._ca_file = Path(ca_file) if ca_file else None
        self._free_users = [(f"ecvi-test-user-{i}", secrets.token_hex(16)) for i in range(USER_POOL)]
        self.etcd: ServiceProcess | None = None
        self.etcd_url = ""

    # -- set-up -------------------------------------------------------------------------------------
    def _prepare(self, workdir: Path) -> ServiceProcess:
        apiserver, etcd = kube_binary("kube-apiserver"), kube_binary("etcd")
        for binary in (apiserver, etcd):
            if not os.access(binary, os.X_OK):
                raise ServiceError(f"{binary} is not an executable file")
        client_port, peer_port, port = free_port(), free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client_port}"
        peer = f"http://127.0.0.1:{peer_port}"
        self.etcd = ServiceProcess("etcd", [
            str(etcd), "--name=ecvi-test", f"--data-dir={workdir / 'etcd'}",
            f"--listen-client-urls={self.etcd_url}", f"--advertise-client-urls={self.etcd_url}",
            f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=ecvi-test={peer}", "--log-level=warn",
            # Tests restart the API server, never etcd: durability across a power cut is not needed.
            "--unsafe-no-fsync",
        ], workdir / "etcd.log", cwd=workdir)
        self._start_etcd()
        (workdir / "sa.key").write_bytes(_rsa_key_pem())
        users = [f"{self.admin_token},ecvi-admin,ecvi-admin,\"system:masters\""]
        users += [f"{token},{name},{name}" for name, token in self._free_users]
        (workdir / "tokens.csv").write_text("\n".join(users) + "\n")
        (workdir / "tokens.csv").chmod(0o600)
        self._ca_file = workdir / "ca.crt"
        self.url = f"https://127.0.0.1:{port}"
        argv = [
            str(apiserver), "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={port}",
            f"--etcd-servers={self.etcd_url}", f"--cert-dir={workdir / 'certs'}",
            f"--token-auth-file={workdir / 'tokens.csv'}", "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={workdir / 'sa.key'}",
            f"--service-account-signing-key-file={workdir / 'sa.key'}",
            "--service-cluster-ip-range=10.0.0.0/24",
            # No controller-manager creates the `default` service account of each namespace.
            "--disable-admission-plugins=ServiceAccount",
            "--profiling=false",
        ]
        return ServiceProcess(self.name, argv, workdir / f"{self.name}.log", cwd=workdir)

    def _start_etcd(self) -> None:
        assert self.etcd is not None
        self.etcd.start()
        try:
            self.etcd.wait_until(lambda: httpx.get(f"{self.etcd_url}/health", timeout=2).json()["health"] == "true",
                                 timeout=60)
        except ServiceError as exc:
            self.etcd.stop(timeout=10)
            raise ServiceError(f"{exc}\n{self.describe_log()}") from None

    # -- lifecycle ----------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return super().running and (self.external or (self.etcd is not None and self.etcd.running))

    def start(self) -> float:
        """Start etcd if it is down, then the API server; returns the seconds the API server took."""
        if self.etcd is not None and not self.etcd.running:
            self._start_etcd()
        return super().start()

    def close(self, *, keep: bool = False) -> None:
        # The API server first: without etcd its shutdown waits on reconnects.
        if self.process is not None:
            self.process.stop(timeout=20)
        if self.etcd is not None:
            self.etcd.stop(timeout=20)
        super().close(keep=keep)

    def describe_log(self) -> str:
        text = super().describe_log()
        if self.workdir is not None:
            log = self.workdir / "etcd.log"
            text += f"\netcd log: {log}\n--- last lines ---\n{tail(log, 10)}"
        return text

    def ready(self) -> bool:
        if not self.external and self._ca_file is not None and not self._ca_file.exists() and not self._write_ca():
            return False
        with self.client() as client:
            return client.get("/readyz").status_code == 200

    def _write_ca(self) -> bool:
        # The self-signed serving cert file holds the leaf, then the CA that signed it.
        assert self.workdir is not None and self._ca_file is not None
        try:
            chain = (self.workdir / "certs" / "apiserver.crt").read_text()
        except FileNotFoundError:
            return False
        marker = "-----BEGIN CERTIFICATE-----"
        if chain.count(marker) < 2:
            return False
        self._ca_file.write_text(marker + chain.rsplit(marker, 1)[1])
        return True

    # -- clients ------------------------------------------------------------------------------------
    @property
    def ca_file(self) -> Path | None:
        """PEM file of the CA of the server's certificate (None: an external server with public CAs)."""
        return self._ca_file

    def client(self, token: str | None = None, *, timeout: float = 10) -> httpx.Client:
        """An httpx client for the REST API as `token` (default: the admin)."""
        verify: ssl.SSLContext | bool = True
        if self._ca_file is not None:
            verify = ssl.create_default_context(cafile=str(self._ca_file))
        return httpx.Client(base_url=self.url, verify=verify, timeout=timeout,
                            headers={"Authorization": f"Bearer {token or self.admin_token}"})

    def kubeconfig(self, path: Path | str, token: str | None = None) -> Path:
        """Write a kubeconfig for this server as `token` (default: the admin) to `path`; returns it."""
        cluster: dict[str, Any] = {"server": self.url}
        if self._ca_file is not None:
            cluster["certificate-authority"] = str(self._ca_file)
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "ecvi-test",
            "clusters": [{"name": "ecvi-test", "cluster": cluster}],
            "users": [{"name": "ecvi-test", "user": {"token": token or self.admin_token}}],
            "contexts": [{"name": "ecvi-test", "context": {"cluster": "ecvi-test", "user": "ecvi-test"}}],
        }
        out = Path(path)
        out.write_text(yaml.safe_dump(config, sort_keys=False))
        return out

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None, *,
              merge_patch: bool = False) -> dict[str, Any]:
        headers = {"Content-Type": "application/merge-patch+json"} if merge_patch else {}
        with self.client() as client:
            return _json(client.request(method, path, json=body, headers=headers))

    # -- RBAC ---------------------------------------------------------------------------------------
    def user_token(self, cluster_role: dict[str, Any]) -> str:
        """A token of a new user bound (ClusterRoleBinding) to exactly `cluster_role` and nothing else.

        `cluster_role` is a ClusterRole object or just `{"rules": [...]}`; it is created under a
        unique name (its own `metadata.name`, if any, is the prefix).  Returns once RBAC grants it.
        """
        prefix = (cluster_role.get("metadata") or {}).get("name") or "ecvi-test-role"
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        role = {**cluster_role, "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {**(cluster_role.get("metadata") or {}), "name": name}}
        self._call("POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles", role)
        if self._free_users and not self.external:
            user, token = self._free_users.pop(0)
            subject = {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": user}
        else:
            user, token = self._service_account_token(name)
            subject = {"kind": "ServiceAccount", "name": name, "namespace": USERS_NAMESPACE}
        self._call("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [subject],
        })
        self._wait_granted(user, role.get("rules") or [])
        return token

    def _service_account_token(self, name: str) -> tuple[str, str]:
        try:
            self.create_namespace(USERS_NAMESPACE)
        except KubeAPIError as exc:
            if exc.status_code != 409:
                raise
        base = f"/api/v1/namespaces/{USERS_NAMESPACE}/serviceaccounts"
        self._call("POST", base, {"metadata": {"name": name}})
        answer = self._call("POST", f"{base}/{name}/token", {"spec": {"expirationSeconds": 86400}})
        return f"system:serviceaccount:{USERS_NAMESPACE}:{name}", str(answer["status"]["token"])

    def _wait_granted(self, user: str, rules: list[dict[str, Any]], timeout: float = 15) -> None:
        # RBAC reads bindings from an informer: a new binding takes effect a moment later.
        if not rules:
            return
        rule = rules[0]
        spec: dict[str, Any] = {"user": user, "groups": ["system:authenticated"]}
        if rule.get("nonResourceURLs"):
            spec["nonResourceAttributes"] = {"path": rule["nonResourceURLs"][0], "verb": rule["verbs"][0]}
        else:
            spec["resourceAttributes"] = {"group": (rule.get("apiGroups") or [""])[0],
                                          "resource": (rule.get("resources") or ["*"])[0], "verb": rule["verbs"][0]}
        deadline = time.monotonic() + timeout
        while True:
            review = self._call("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", {
                "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec})
            if review["status"].get("allowed"):
                return
            if time.monotonic() > deadline:
                raise ServiceError(f"RBAC still denies {user} {spec} after {timeout:.0f}s: {review['status']}")
            time.sleep(0.1)

    # -- objects ------------------------------------------------------------------------------------
    @staticmethod
    def _metadata(labels: Labels | None, annotations: Labels | None) -> dict[str, Any]:
        meta: dict[str, Any] = {}
        if labels is not None:
            meta["labels"] = dict(labels)
        if annotations is not None:
            meta["annotations"] = dict(annotations)
        return meta

    def create_namespace(self, name: str, labels: Mapping[str, str] | None = None,
                         annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Create a namespace; returns it."""
        meta = {"name": name, **self._metadata(labels, annotations)}
        return self._call("POST", "/api/v1/namespaces", {"metadata": meta})

    def patch_namespace(self, name: str, labels: Labels | None = None,
                        annotations: Labels | None = None) -> dict[str, Any]:
        """Merge `labels` / `annotations` into the namespace (a None value removes that key)."""
        body = {"metadata": self._metadata(labels, annotations)}
        return self._call("PATCH", f"/api/v1/namespaces/{name}", body, merge_patch=True)

    def create_pod(self, namespace: str, name: str, *, node_name: str, labels: Mapping[str, str] | None = None,
                   annotations: Mapping[str, str] | None = None, containers: Mapping[str, str] | None = None,
                   init_containers: Mapping[str, str] | None = None,
                   owner: tuple[str, str] | None = None) -> dict[str, Any]:
        """Create a pod bound to `node_name` (containers: name -> image); returns it as created.

        `owner` is (kind, name) of a controller that need not exist; its uid is derived from
        namespace, kind and name, so two pods of one owner share it.
        """
        meta: dict[str, Any] = {"name": name, **self._metadata(labels, annotations)}
        if owner is not None:
            kind, owner_name = owner
            meta["ownerReferences"] = [{
                "apiVersion": _OWNER_API_VERSIONS.get(kind, "v1"), "kind": kind, "name": owner_name,
                "uid": str(uuid.uuid5(_OWNER_UIDS, f"{namespace}/{kind}/{owner_name}")),
                "controller": True, "blockOwnerDeletion": True,
            }]
        spec: dict[str, Any] = {
            "nodeName": node_name,
            "containers": [{"name": c, "image": image} for c, image in (containers or {"app": "ecvi/app:1"}).items()],
        }
        if init_containers:
            spec["initContainers"] = [{"name": c, "image": image} for c, image in init_containers.items()]
        return self._call("POST", f"/api/v1/namespaces/{namespace}/pods", {"metadata": meta, "spec": spec})

    def patch_pod(self, namespace: str, name: str, labels: Labels | None = None,
                  annotations: Labels | None = None) -> dict[str, Any]:
        """Merge `labels` / `annotations` into the pod (a None value removes that key)."""
        body = {"metadata": self._metadata(labels, annotations)}
        return self._call("PATCH", f"/api/v1/namespaces/{namespace}/pods/{name}", body, merge_patch=True)

    def delete_pod(self, namespace: str, name: str, *, grace_seconds: int = 0) -> None:
        """Delete a pod.  With no kubelet to confirm, a grace period > 0 leaves it terminating for good."""
        self._call("DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}", {"gracePeriodSeconds": grace_seconds})
