"""An in-memory Kubernetes API for ``httpx.MockTransport``: paged lists, watches, compaction, outages.

It follows the real server where the cache depends on it: list pages share one resourceVersion and
hand out ``continue`` tokens; a watch sends every event after the requested version, then waits for
new ones; a version older than the compaction point is answered with 410 (as an HTTP status, or as an
ERROR event once the stream is open, as kube-apiserver does).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import orjson


def make_pod(name: str, namespace: str = "default", node: str = "node-a", *, labels: dict[str, str] | None = None,
             annotations: dict[str, str] | None = None, owner: tuple[str, str] | None = None,
             containers: dict[str, str] | None = None, uid: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "uid": uid or f"uid-{namespace}-{name}"}
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": owner[0], "name": owner[1],
                                    "uid": "o-1", "controller": True}]
    return {"metadata": meta, "spec": {"nodeName": node, "containers": [
        {"name": c, "image": i} for c, i in (containers or {"app": "registry/app:1"}).items()]}}


def make_namespace(name: str, labels: dict[str, str] | None = None,
                   annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "uid": f"ns-{name}"}
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    return {"metadata": meta}


class FakeApi:
    """Holds pods and namespaces, records requests, and misbehaves on request."""

    def __init__(self) -> None:
        self.rv = 100
        self.objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {"pods": {}, "namespaces": {}}
        self.events: dict[str, list[tuple[int, str, dict[str, Any]]]] = {"pods": [], "namespaces": []}
        self.compacted = 0
        self.requests: list[httpx.Request] = []
        self.fail_requests = 0  # the next N requests fail to connect
        self.down = False  # every request fails to connect while set
        self.gone_as_event = False  # compaction reported as a watch ERROR event, not HTTP 410
        self.expire_continue = False  # the next continue token is answered with 410
        self.extra_lines: dict[str, list[bytes]] = {"pods": [], "namespaces": []}  # sent first on the next watch
        self._closing = False
        self._drop = 0

    # -- state changes ------------------------------------------------------------------------
    def _record(self, resource: str, kind: str, obj: dict[str, Any]) -> None:
        self.rv += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.rv)
        key = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if kind == "DELETED":
            self.objects[resource].pop(key, None)
        else:
            self.objects[resource][key] = obj
        self.events[resource].append((self.rv, kind, obj))

    def add(self, resource: str, obj: dict[str, Any]) -> None:
        key = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        self._record(resource, "MODIFIED" if key in self.objects[resource] else "ADDED", obj)

    def delete(self, resource: str, namespace: str, name: str) -> None:
        self._record(resource, "DELETED", self.objects[resource][(namespace, name)])

    def silently_delete(self, resource: str, namespace: str, name: str) -> None:
        """Delete without a watch event (as if the event was lost to compaction)."""
        self.objects[resource].pop((namespace, name))
        self.rv += 1

    def compact(self) -> None:
        """Forget history: watches from any older version get 410."""
        self.compacted = self.rv
        self.events = {"pods": [], "namespaces": []}

    def drop_watches(self) -> None:
        """Break every open watch stream with a connection error."""
        self._drop += 1

    def end_watches(self) -> None:
        """End open watch streams cleanly (as ``timeoutSeconds`` does); later watches stay open."""
        self._closing = True

    def reopen(self) -> None:
        self._closing = False

    def requests_for(self, resource: str, *, watch: bool) -> list[dict[str, str]]:
        out = []
        for r in self.requests:
            q = {k: v[0] for k, v in parse_qs(r.url.query.decode()).items()}
            if r.url.path == f"/api/v1/{resource}" and (q.get("watch") == "true") == watch:
                out.append(q)
        return out

    # -- transport ----------------------------------------------------------------------------
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self._handle)

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.down or self.fail_requests > 0:
            self.fail_requests = max(0, self.fail_requests - 1)
            raise httpx.ConnectError("connection refused", request=request)
        resource = request.url.path.rsplit("/", 1)[-1]
        q = {k: v[0] for k, v in parse_qs(request.url.query.decode()).items()}
        if q.get("watch") == "true":
            return self._watch(resource, q)
        return self._list(resource, q)

    def _visible(self, resource: str, q: dict[str, str]) -> list[dict[str, Any]]:
        return [o for o in self.objects[resource].values() if self._matches(q, o)]

    @staticmethod
    def _matches(q: dict[str, str], obj: dict[str, Any]) -> bool:
        selector = q.get("fieldSelector", "")
        if selector.startswith("spec.nodeName="):
            return bool(obj.get("spec", {}).get("nodeName") == selector.split("=", 1)[1])
        return True

    def _list(self, resource: str, q: dict[str, str]) -> httpx.Response:
        items = self._visible(resource, q)
        limit = int(q.get("limit", "0")) or len(items) or 1
        start = 0
        if "continue" in q:
            if self.expire_continue:
                self.expire_continue = False
                return httpx.Response(410, json={"kind": "Status", "code": 410, "reason": "Expired",
                                                 "message": "The provided continue parameter is too old"})
            start, rv = (int(x) for x in q["continue"].split(":"))
        else:
            rv = self.rv
        page = items[start:start + limit]
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if start + limit < len(items):
            meta["continue"] = f"{start + limit}:{rv}"
        return httpx.Response(200, content=orjson.dumps({"kind": "List", "metadata": meta, "items": page}))

    def _watch(self, resource: str, q: dict[str, str]) -> httpx.Response:
        since = int(q.get("resourceVersion") or 0)
        if since < self.compacted and not self.gone_as_event:
            return httpx.Response(410, json={"kind": "Status", "code": 410, "reason": "Expired",
                                             "message": f"too old resource version: {since}"})
        return httpx.Response(200, content=self._stream(resource, q, since))

    async def _stream(self, resource: str, q: dict[str, str], since: int) -> AsyncIterator[bytes]:
        drop_at_start = self._drop
        if since < self.compacted:
            gone = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old resource version"}
            yield orjson.dumps({"type": "ERROR", "object": gone}) + b"\n"
            return
        for line in self.extra_lines[resource]:
            yield line + b"\n"
        self.extra_lines[resource] = []
        sent = since
        while True:
            for rv, kind, obj in list(self.events[resource]):
                if rv > sent:
                    sent = rv
                    if kind == "BOOKMARK" or self._matches(q, obj):
                        yield orjson.dumps({"type": kind, "object": obj}) + b"\n"
            if self._drop != drop_at_start:
                raise httpx.ReadError("connection reset by peer")
            if self._closing:
                return
            await asyncio.sleep(0.005)

    def bookmark(self, resource: str) -> None:
        """Move the version without a visible change and send a BOOKMARK on open watches."""
        self.rv += 1
        obj = {"kind": "Pod", "metadata": {"resourceVersion": str(self.rv)}}
        self.events[resource].append((self.rv, "BOOKMARK", obj))


def realistic_pod_fields(i: int, replicas: int = 20) -> dict[str, Any]:
    """Name, labels (10), annotations (5), two containers and owner of the ``i``-th pod of a Deployment-heavy
    node: ``replicas`` consecutive pods share a Deployment (``replicas=1`` makes every pod's values unique)."""
    d = i // replicas
    template_hash = hashlib.sha1(str(d).encode()).hexdigest()[:10]
    labels = {"app.kubernetes.io/name": f"svc-{d}", "app.kubernetes.io/instance": f"svc-{d}-prod",
              "app.kubernetes.io/version": f"1.{d % 7}.3", "app.kubernetes.io/component": "api",
              "app.kubernetes.io/part-of": "ecvi", "app.kubernetes.io/managed-by": "Helm",
              "pod-template-hash": template_hash, "team": f"team-{d % 5}", "environment": "production",
              "tier": "backend"}
    annotations = {"prometheus.io/scrape": "true", "prometheus.io/port": "9100",
                   "kubectl.kubernetes.io/restartedAt": "2026-11-28T10:00:00Z",
                   "checksum/config": hashlib.sha256(str(d).encode()).hexdigest(),
                   "cluster-autoscaler.kubernetes.io/safe-to-evict": "true"}
    return {"name": f"svc-{d}-{template_hash}-{i:05x}", "namespace": f"ns-{d % 10}", "labels": labels,
            "annotations": annotations, "owner": ("ReplicaSet", f"svc-{d}-{template_hash}"),
            "containers": {"app": f"registry.example.com/svc-{d}:1.{d % 7}.3", "proxy": "envoyproxy/envoy:v1.30.1"}}
