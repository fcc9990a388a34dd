"""Pod and namespace metadata for the file source, kept current by list+watch, read with no I/O.

Only this node's pods are watched (``fieldSelector=spec.nodeName=<node>``), plus all namespaces.
Lookups are dictionary reads, so a slow or absent API server never holds up reading logs: while it
is away the cache serves what it last knew and ``ecvi_shipper_kube_api_up`` is 0. ``generation``
moves on every visible change, so readers can keep per-file metadata and refresh it only then.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterable

from shipper import metrics
from shipper.errors import StartupError
from shipper.kube.client import KubeClient
from shipper.kube.models import (
    DEFAULT_EXCLUDE_POD_ANNOTATIONS,
    DEFAULT_POD_ANNOTATIONS,
    AnnotationFilter,
    NamespaceInfo,
    PodInfo,
    parse_namespace,
    parse_pod,
)
from shipper.kube.store import ObjectStore
from shipper.kube.watch import ListWatch

_SWEEP_SECS = 1.0


class KubeMetadataCache:
    """This node's pods and the cluster's namespaces, at most ``max_pods`` of each.

    The cache owns ``client`` and closes it in :meth:`stop`. Deleted pods and namespaces stay for
    ``delete_grace_secs`` (pods with ``deleted=True``) so a pod's files can ship their last lines.
    """

    def __init__(
        self,
        client: KubeClient,
        node_name: str,
        max_pods: int = 10000,
        delete_grace_secs: float = 60.0,
        *,
        pod_annotations: Iterable[str] = DEFAULT_POD_ANNOTATIONS,
        exclude_pod_annotations: Iterable[str] = DEFAULT_EXCLUDE_POD_ANNOTATIONS,
        backoff_initial_secs: float = 0.5,
        backoff_max_secs: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not node_name:
            raise StartupError("kubernetes_api.node_name: empty (set it from spec.nodeName)")
        self.client = client
        self.node_name = node_name
        self._generation = 0
        self._synced = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._sweep_secs = min(_SWEEP_SECS, max(delete_grace_secs / 4, 0.01))
        annotations = AnnotationFilter(pod_annotations, exclude_pod_annotations)
        self._pods: ObjectStore[tuple[str, str], PodInfo] = ObjectStore(
            "pod", lambda obj: parse_pod(obj, annotations), lambda p: (p.namespace, p.name),
            max_items=max_pods, grace_secs=delete_grace_secs, on_change=self._changed,
            mark_deleted=lambda p: dataclasses.replace(p, deleted=True), clock=clock,
        )
        self._namespaces: ObjectStore[str, NamespaceInfo] = ObjectStore(
            "namespace", parse_namespace, lambda n: n.name, max_items=max_pods, grace_secs=delete_grace_secs,
            on_change=self._changed, clock=clock,
        )
        self._watches = [
            ListWatch(client, "pod", "/api/v1/pods", self._pods, params={"fieldSelector": f"spec.nodeName={node_name}"},
                      on_health=self._health_changed, on_listed=self._listed,
                      backoff_initial_secs=backoff_initial_secs, backoff_max_secs=backoff_max_secs),
            ListWatch(client, "namespace", "/api/v1/namespaces", self._namespaces,
                      on_health=self._health_changed, on_listed=self._listed,
                      backoff_initial_secs=backoff_initial_secs, backoff_max_secs=backoff_max_secs),
        ]

    @property
    def generation(self) -> int:
        """Moves on every change a reader could see (added, changed, deleted or expired objects)."""
        return self._generation

    @property
    def synced(self) -> bool:
        """True once the first lists of pods and namespaces are in (it stays True during outages)."""
        return self._synced.is_set()

    async def start(self) -> None:
        """Start listing and watching in the background; API trouble is logged and retried, never raised."""
        if self._tasks:
            return
        metrics.KUBE_API_UP.set(0)
        for w in self._watches:
            self._tasks.append(asyncio.create_task(w.run(), name=f"kube-watch-{w.kind}"))
        self._tasks.append(asyncio.create_task(self._sweep(), name="kube-cache-sweep"))

    async def wait_synced(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds for :attr:`synced`; whether it is."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._synced.wait(), timeout)
        return self.synced

    def pod(self, namespace: str, name: str) -> PodInfo | None:
        """The pod, if it is on this node (or was deleted less than the grace ago). No I/O."""
        return self._pods.get((namespace, name))

    def namespace(self, name: str) -> NamespaceInfo | None:
        """The namespace's labels and exclusion annotations. No I/O."""
        return self._namespaces.get(name)

    async def stop(self) -> None:
        """Stop the watches and close the client."""
        tasks, self._tasks = self._tasks, []
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await self.client.aclose()

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_secs)
            self._pods.expire()
            self._namespaces.expire()

    def _changed(self) -> None:
        self._generation += 1

    def _listed(self) -> None:
        if all(w.listed for w in self._watches):
            self._synced.set()

    def _health_changed(self) -> None:
        metrics.KUBE_API_UP.set(1 if all(w.healthy for w in self._watches) else 0)
