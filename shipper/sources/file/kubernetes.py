"""Kubernetes pod metadata of a log file: from the kubelet's path, then from the API's pod cache.

The path names the namespace, pod and container (and the container id or pod uid) and stays
authoritative for them; the API adds labels, annotations, image, node and owner (see
:func:`resolve`). A file of an unknown pod (API down, cache not synced, pod gone) is still shipped,
flagged ``kubernetes_enrichment: missing``. A file is not shipped when its pod or namespace is
annotated ``ecvi-logs.io/exclude: "true"`` or its container is listed in its pod's
``ecvi-logs.io/exclude-containers: "a,b"``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

from shipper import metrics
from shipper.lines import Item, LineBatch, count
from shipper.sources.file.config import EXCLUDE_ANNOTATION, EXCLUDE_CONTAINERS_ANNOTATION, KubernetesApiConfig

if TYPE_CHECKING:  # the client and its dependencies load only when a source uses the API
    from shipper.kube import KubeMetadataCache, NamespaceInfo, PodInfo

log = logging.getLogger("shipper.sources.file")

#: /var/log/containers/<pod>_<namespace>_<container>-<64 hex id>.log (also rendered into VRL by ``pipelines``).
CONTAINER_LOG_PATH = re.compile(
    r"/containers/(?P<pod>[^/_]+)_(?P<ns>[^/_]+)_(?P<container>.+)-(?P<id>[0-9a-f]{64})\.log"
)
#: /var/log/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log
POD_LOG_PATH = re.compile(r"/pods/(?P<ns>[^/_]+)_(?P<pod>[^/_]+)_(?P<uid>[^/]+)/(?P<container>[^/]+)/\d+\.log")

#: ``meta["kubernetes_enrichment"]`` of events whose pod the API did not describe.
ENRICHMENT_MISSING = "missing"
# Annotation values are written by whoever may create pods and are copied into every event of the
# pod: past this many characters (keys and values) the rest of a pod's annotations are left out.
MAX_ANNOTATION_CHARS = 16_384
#: How long start-up waits for the pod cache's first lists: files opened before it has them are
#: shipped with path metadata and get the API's once it has.
SYNC_WAIT_SECS = 2.0


@lru_cache(maxsize=65536)
def metadata_from_path(path: str) -> dict[str, str] | None:
    """``namespace``, ``pod_name``, ``container_name`` and ``container_id`` or ``pod_uid``."""
    m = CONTAINER_LOG_PATH.search(path)
    if m:
        return {"namespace": m["ns"], "pod_name": m["pod"], "container_name": m["container"],
                "container_id": m["id"]}
    m = POD_LOG_PATH.search(path)
    if m:
        return {"namespace": m["ns"], "pod_name": m["pod"], "container_name": m["container"],
                "pod_uid": m["uid"]}
    return None


class MetadataCache(Protocol):
    """What the file source reads of :class:`shipper.kube.KubeMetadataCache` (no I/O in any of it)."""

    @property
    def generation(self) -> int: ...

    @property
    def synced(self) -> bool: ...

    def pod(self, namespace: str, name: str) -> PodInfo | None: ...

    def namespace(self, name: str) -> NamespaceInfo | None: ...


@dataclass(frozen=True, slots=True)
class FileMetadata:
    """A file's metadata as of one look at the cache: what its events carry, or why it is not shipped.

    ``pod`` and ``ns`` are the cache entries it was built from: when the cache still holds the very
    same objects, the metadata is reused as it is (one dict per file, shared by its events).
    """

    kubernetes: dict[str, Any]
    missing: bool
    excluded: str | None
    pod: PodInfo | None
    ns: NamespaceInfo | None


def resolve(path_meta: dict[str, str], cache: MetadataCache, cfg: KubernetesApiConfig,
            previous: FileMetadata | None = None) -> FileMetadata:
    """The metadata of a file whose path gave ``path_meta``, as the cache knows its pod now.

    The path's fields win over the API's. When the path names a pod uid other than the API's, the
    API describes a newer pod of the same name (a StatefulSet's), so the file counts as unknown.
    """
    ns_name, pod_name = path_meta["namespace"], path_meta["pod_name"]
    pod = cache.pod(ns_name, pod_name)
    ns = cache.namespace(ns_name)
    if previous is not None and previous.pod is pod and previous.ns is ns:
        return previous
    path_uid = path_meta.get("pod_uid")
    if pod is not None and path_uid is not None and path_uid != pod.uid:
        pod = None
    container = path_meta["container_name"]
    excluded = exclusion(pod, ns, container)
    out: dict[str, Any] = {}
    if ns is not None:
        out["namespace_labels"] = dict(ns.labels)
    if pod is not None:
        out["pod_labels"] = dict(pod.labels)
        out["pod_annotations"] = _annotations(pod.annotations, cfg)
        out["node_name"] = pod.node_name
        out["pod_uid"] = pod.uid
        image = pod.containers.get(container)
        if image:
            out["container_image"] = image
        if pod.owner_kind and pod.owner_name:
            out["owner_kind"], out["owner_name"] = pod.owner_kind, pod.owner_name
    out.update(path_meta)
    return FileMetadata(out, pod is None, excluded, pod, ns)


def exclusion(pod: PodInfo | None, ns: NamespaceInfo | None, container: str) -> str | None:
    """Why a container's file is not shipped (which annotation says so), or None."""
    if ns is not None and _is_true(ns.annotations.get(EXCLUDE_ANNOTATION)):
        return f"namespace {ns.name} annotated {EXCLUDE_ANNOTATION}"
    if pod is None:
        return None
    if _is_true(pod.annotations.get(EXCLUDE_ANNOTATION)):
        return f"pod annotated {EXCLUDE_ANNOTATION}"
    listed = pod.annotations.get(EXCLUDE_CONTAINERS_ANNOTATION)
    if listed and container in {c.strip() for c in listed.split(",")}:
        return f"container listed in {EXCLUDE_CONTAINERS_ANNOTATION}"
    return None


def _is_true(value: str | None) -> bool:
    return value is not None and value.strip().lower() == "true"


def _annotations(annotations: Mapping[str, str], cfg: KubernetesApiConfig) -> dict[str, str]:
    """The annotations ``pod_annotations`` asks for (and ``exclude_pod_annotations`` does not), bounded."""
    out: dict[str, str] = {}
    spent = 0
    for key in sorted(annotations):
        if not any(fnmatchcase(key, p) for p in cfg.pod_annotations):
            continue
        if any(fnmatchcase(key, p) for p in cfg.exclude_pod_annotations):
            continue
        value = annotations[key]
        if spent + len(key) + len(value) > MAX_ANNOTATION_CHARS:
            continue  # this one alone is left out; smaller ones after it still fit
        spent += len(key) + len(value)
        out[key] = value
    return out


class PodMetadataTracker:
    """Each tailed (or excluded) kubelet file's :class:`FileMetadata`, refreshed when the cache changes.

    ``cache`` is None while the API cannot be used (no client could be built): every file is then
    unknown and shipped with its path metadata.
    """

    def __init__(self, source: str, cfg: KubernetesApiConfig, cache: MetadataCache | None,
                 owned: KubeMetadataCache | None = None) -> None:
        self.cfg = cfg
        self.cache = cache
        self._owned = owned
        self._missing_events = metrics.KUBE_ENRICHMENT_MISSING.labels(source)
        self._files: dict[str, tuple[dict[str, str], FileMetadata]] = {}
        self._generation = cache.generation if cache is not None else 0
        self.missing: set[str] = set()
        """Keys of files whose pod the API did not describe (their events are flagged)."""

    @classmethod
    async def open(cls, source: str, cfg: KubernetesApiConfig, cache: MetadataCache | None) -> PodMetadataTracker:
        """A tracker over ``cache``, else over a pod cache of its own, started here (see :func:`start_cache`)."""
        if cache is not None:
            return cls(source, cfg, cache)
        owned = await start_cache(source, cfg)
        return cls(source, cfg, owned, owned)

    async def close(self) -> None:
        """Stop the pod cache if this tracker started it."""
        if self._owned is not None:
            owned, self._owned = self._owned, None
            await owned.stop()

    def flag_missing(self, key: str, batch: list[Item], first: int) -> None:
        """Flag (and count) ``batch[first:]``, events of file ``key``, if the API did not describe its pod."""
        if key in self.missing and len(batch) > first:
            for i in range(first, len(batch)):
                it = batch[i]
                if isinstance(it, LineBatch):
                    batch[i] = it.with_extra({"kubernetes_enrichment": ENRICHMENT_MISSING})
                else:
                    it.meta["kubernetes_enrichment"] = ENRICHMENT_MISSING
            self._missing_events.inc(count(batch[first:]))

    def track(self, key: str, path_meta: dict[str, str]) -> FileMetadata:
        """The metadata of a file adopted now, remembered under ``key`` for :meth:`changed`."""
        if self.cache is None:
            fm = FileMetadata(path_meta, True, None, None, None)
        else:
            fm = resolve(path_meta, self.cache, self.cfg)
        self._remember(key, path_meta, fm)
        return fm

    def changed(self) -> list[tuple[str, FileMetadata]]:
        """Files whose metadata changed since the last call; cheap (one comparison) while nothing did."""
        cache = self.cache
        if cache is None or cache.generation == self._generation:
            return []
        self._generation = cache.generation
        out: list[tuple[str, FileMetadata]] = []
        for key, (path_meta, old) in list(self._files.items()):
            fm = resolve(path_meta, cache, self.cfg, old)
            if fm is not old:
                self._remember(key, path_meta, fm)
                if fm.kubernetes != old.kubernetes or fm.excluded != old.excluded:
                    out.append((key, fm))
        return out

    def forget(self, key: str) -> None:
        """The file is no longer tailed nor held excluded."""
        self._files.pop(key, None)
        self.missing.discard(key)

    def _remember(self, key: str, path_meta: dict[str, str], fm: FileMetadata) -> None:
        self._files[key] = (path_meta, fm)
        if fm.missing:
            self.missing.add(key)
        else:
            self.missing.discard(key)


async def start_cache(source: str, cfg: KubernetesApiConfig) -> KubeMetadataCache | None:
    """This node's pod cache, started and given at most :data:`SYNC_WAIT_SECS` to sync.

    None when no client can be built (a bad kubeconfig, not in a pod): said once, and the source
    ships with path metadata rather than not at all.
    """
    from shipper.kube import KubeClient, KubeMetadataCache

    try:
        client = KubeClient.from_kubeconfig(cfg.kubeconfig) if cfg.kubeconfig else KubeClient.in_cluster()
        cache = KubeMetadataCache(client, node_name=cfg.node_name, max_pods=cfg.max_pods,
                                  delete_grace_secs=cfg.delete_grace_secs, pod_annotations=cfg.pod_annotations,
                                  exclude_pod_annotations=cfg.exclude_pod_annotations)
        await cache.start()
    except Exception as exc:  # hostile kubeconfig or environment: this option only, not the source
        log.error("sources.%s.kubernetes_api: %s; files are shipped with path metadata only", source,
                  str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        return None
    try:
        synced = await asyncio.wait_for(cache.wait_synced(timeout=SYNC_WAIT_SECS), SYNC_WAIT_SECS + 0.5)
    except TimeoutError:
        synced = False
    if not synced:
        log.warning("sources.%s.kubernetes_api: pod cache not synced after %.0fs; files are shipped with path "
                    "metadata (flagged kubernetes_enrichment=missing) until it is", source, SYNC_WAIT_SECS)
    return cache


class ExcludedFiles:
    """Files not read because of an exclusion annotation, by key (``dev:ino``), with their paths.

    A file let go (its exclusion lifted) is remembered until it is opened again, to be read from
    its end then: lines written while it was excluded are not shipped.
    """

    def __init__(self) -> None:
        self.paths: dict[str, str] = {}
        self._resume_at_end: set[str] = set()

    def __contains__(self, key: object) -> bool:
        return key in self.paths

    def add(self, key: str, path: str) -> None:
        self.paths[key] = path
        self._resume_at_end.discard(key)

    def let_go(self, key: str) -> str:
        """The exclusion was lifted; the file's path."""
        self._resume_at_end.add(key)
        return self.paths.pop(key)

    def resumes_at_end(self, key: str) -> bool:
        """Whether a file opened now was let go (asked once: the answer is forgotten)."""
        if key in self._resume_at_end:
            self._resume_at_end.discard(key)
            return True
        return False

    def gone(self) -> list[str]:
        """Keys whose path leads to another file now (rotated, pod deleted), forgotten here."""
        out = []
        for key, path in list(self.paths.items()):
            try:
                st = os.stat(path)
                if f"{st.st_dev}:{st.st_ino}" == key:
                    continue
            except OSError:
                pass
            del self.paths[key]
            out.append(key)
        return out
