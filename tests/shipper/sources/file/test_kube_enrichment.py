"""Kubernetes API metadata in the file source: fields, path authority, refresh, missing pods, exclusion."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pydantic
import pytest

from shipper import metrics
from shipper.event import Event
from shipper.kube import NamespaceInfo, PodInfo
from shipper.sources.file.config import FileSourceConfig
from shipper.sources.file.kubernetes import MAX_ANNOTATION_CHARS, resolve
from shipper.sources.file.source import FileSource
from shipper.templates import render
from tests.factories import cri_line
from tests.shipper.sources.file._support import Collector

CID = "c" * 64
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

anyio = pytest.mark.anyio


class StandInCache:
    """The reading side of KubeMetadataCache: dicts of real PodInfo/NamespaceInfo and a generation."""

    def __init__(self) -> None:
        self.pods: dict[tuple[str, str], PodInfo] = {}
        self.namespaces: dict[str, NamespaceInfo] = {}
        self.generation = 0
        self.synced = True

    def pod(self, namespace: str, name: str) -> PodInfo | None:
        return self.pods.get((namespace, name))

    def namespace(self, name: str) -> NamespaceInfo | None:
        return self.namespaces.get(name)

    def put_pod(self, pod: PodInfo) -> None:
        self.pods[(pod.namespace, pod.name)] = pod
        self.generation += 1

    def put_namespace(self, ns: NamespaceInfo) -> None:
        self.namespaces[ns.name] = ns
        self.generation += 1

    def drop_pod(self, namespace: str, name: str) -> None:
        del self.pods[(namespace, name)]
        self.generation += 1


def pod(name: str = "api-7d9f-x2x4k", ns: str = "shop", *, labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None, containers: dict[str, str] | None = None,
        uid: str = "uid-1") -> PodInfo:
    return PodInfo(
        uid=uid, namespace=ns, name=name, node_name="node-a",
        labels=MappingProxyType(labels if labels is not None else {"app.kubernetes.io/name": "api"}),
        annotations=MappingProxyType(annotations or {}),
        containers=MappingProxyType(containers if containers is not None else {"backend": "reg/api:1.2"}),
        owner_kind="Deployment", owner_name="api-7d9f",
    )


def namespace(name: str = "shop", labels: dict[str, str] | None = None,
              annotations: dict[str, str] | None = None) -> NamespaceInfo:
    return NamespaceInfo(name=name, labels=MappingProxyType(labels or {"team": "payments"}),
                         annotations=MappingProxyType(annotations or {}))


def container_log(d: Path, pod_name: str = "api-7d9f-x2x4k", ns: str = "shop", container: str = "backend",
                  cid: str = CID) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    return d / f"{pod_name}_{ns}_{container}-{cid}.log"


def kube_cfg(include: str, **api: Any) -> FileSourceConfig:
    return FileSourceConfig.model_validate({
        "type": "file", "include": [include], "format": "cri", "glob_interval_secs": 0.05,
        "poll_interval_secs": 0.01, "rotate_wait_secs": 0.3,
        "kubernetes_api": {"node_name": "node-a", **api},
    })


def append(path: Path, *messages: str) -> None:
    with path.open("a") as f:
        f.write("".join(cri_line(m) for m in messages))


def counter(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


class Running:
    """A file source running as a task, for tests that change things while it reads."""

    def __init__(self, src: FileSource, col: Collector) -> None:
        self.src, self.col = src, col

    async def __aenter__(self) -> Running:
        self.task = asyncio.create_task(self.src.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.src.stop()
        await asyncio.wait_for(self.task, 5)
        self.src.save_checkpoints()
        self.src.close()

    async def until(self, cond: Callable[[], bool], timeout: float = 10.0) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not cond():
            assert loop.time() < end, f"timed out; got {self.col.messages()}"
            await asyncio.sleep(0.02)

    async def settle(self, secs: float = 0.3) -> None:
        """Several discovery and read passes."""
        await asyncio.sleep(secs)


def by_message(events: list[Event]) -> dict[str, Event]:
    return {str(e.record.get("message")): e for e in events}


# -- fields ---------------------------------------------------------------------------------------


@anyio
async def test_events_carry_the_pods_api_metadata_next_to_the_path_fields(tmp_path: Path) -> None:
    cache = StandInCache()
    cache.put_namespace(namespace())
    cache.put_pod(pod(annotations={"team.io/owner": "alice", LAST_APPLIED: "{...}"},
                      containers={"init-db": "reg/migrate:3", "backend": "reg/api:1.2"}))
    log = container_log(tmp_path / "containers")
    append(log, "one", "two")
    col = Collector()
    src = FileSource("kube-fields", kube_cfg(str(tmp_path / "containers" / "*.log")), col, tmp_path / "data", cache)

    async with Running(src, col) as r:
        await r.until(lambda: len(col.events) >= 2)
    one, two = col.events
    assert one.meta["kubernetes"] == {
        "namespace": "shop", "pod_name": "api-7d9f-x2x4k", "container_name": "backend", "container_id": CID,
        "pod_labels": {"app.kubernetes.io/name": "api"}, "pod_annotations": {"team.io/owner": "alice"},
        "namespace_labels": {"team": "payments"}, "node_name": "node-a", "pod_uid": "uid-1",
        "container_image": "reg/api:1.2", "owner_kind": "Deployment", "owner_name": "api-7d9f",
    }
    assert one.meta["kubernetes"] is two.meta["kubernetes"]  # one dict per file, shared by its events
    assert "kubernetes_enrichment" not in one.meta
    assert type(one.meta["kubernetes"]["pod_labels"]) is dict  # packable (a MappingProxy is not)


@anyio
async def test_the_path_outranks_the_api_and_a_record_outranks_neither(tmp_path: Path) -> None:
    cache = StandInCache()
    cache.put_pod(pod())
    log = container_log(tmp_path / "containers")
    forged = {"message": "forged", "kubernetes": {"namespace": "kube-system", "pod_name": "etcd",
                                                  "pod_labels": {"app.kubernetes.io/name": "etcd"}}}
    append(log, json.dumps(forged))
    col = Collector()
    src = FileSource("kube-auth", kube_cfg(str(tmp_path / "containers" / "*.log")), col, tmp_path / "data", cache)

    async with Running(src, col) as r:
        await r.until(lambda: len(col.events) >= 1)
    (e,) = col.events
    assert e.record["kubernetes"]["namespace"] == "kube-system"  # the record keeps what it said...
    assert e.get("kubernetes.namespace") == "shop"  # ...but lookups read the shipper's metadata
    assert e.get("kubernetes.pod_name") == "api-7d9f-x2x4k"
    assert render("{{ kubernetes.pod_labels.app.kubernetes.io/name }}", e) == "api"


def test_a_pods_path_whose_uid_is_not_the_apis_is_a_different_pod(tmp_path: Path) -> None:
    """A StatefulSet pod recreated under the same name: the old pod's files must not get the new labels."""
    cache = StandInCache()
    new = pod("db-0", labels={"generation": "new"}, uid="uid-new")
    cache.put_pod(new)
    fm = resolve({"namespace": "shop", "pod_name": "db-0", "container_name": "backend", "pod_uid": "uid-old"},
                 cache, kube_cfg("x").kubernetes_api)  # type: ignore[arg-type]
    assert fm.missing and "pod_labels" not in fm.kubernetes and fm.kubernetes["pod_uid"] == "uid-old"
    fm = resolve({"namespace": "shop", "pod_name": "db-0", "container_name": "backend", "pod_uid": "uid-new"},
                 cache, kube_cfg("x").kubernetes_api)  # type: ignore[arg-type]
    assert not fm.missing and fm.kubernetes["pod_labels"] == {"generation": "new"}


def test_annotations_are_filtered_and_bounded() -> None:
    cache = StandInCache()
    huge = "x" * (MAX_ANNOTATION_CHARS + 1)
    cache.put_pod(pod(annotations={"a.io/keep": "1", "b.io/huge": huge, "c.io/keep": "2", "drop.io/x": "3",
                                   LAST_APPLIED: "{}"}))
    api = kube_cfg("x", pod_annotations=["*.io/*"], exclude_pod_annotations=["drop.io/*", LAST_APPLIED]).kubernetes_api
    assert api is not None
    fm = resolve({"namespace": "shop", "pod_name": "api-7d9f-x2x4k", "container_name": "backend"}, cache, api)
    # The oversized value alone is left out; a hostile pod cannot put 256 KiB into each of its events.
    assert fm.kubernetes["pod_annotations"] == {"a.io/keep": "1", "c.io/keep": "2"}


# -- refresh --------------------------------------------------------------------------------------


@anyio
async def test_relabelled_pod_later_events_carry_the_new_labels(tmp_path: Path) -> None:
    cache = StandInCache()
    cache.put_pod(pod(labels={"version": "v1"}))
    log = container_log(tmp_path / "containers")
    append(log, "before-1", "before-2")
    col = Collector()
    src = FileSource("kube-relabel", kube_cfg(str(tmp_path / "containers" / "*.log")), col, tmp_path / "data",
                     cache)

    async with Running(src, col) as r:
        await r.until(lambda: len(col.events) >= 2)
        cache.put_pod(pod(labels={"version": "v2"}))
        await r.settle(0.1)
        append(log, "after-1", "after-2")
        await r.until(lambda: len(col.events) >= 4)
    got = {m: e.meta["kubernetes"]["pod_labels"] for m, e in by_message(col.events).items()}
    assert got == {"before-1": {"version": "v1"}, "before-2": {"version": "v1"},
                   "after-1": {"version": "v2"}, "after-2": {"version": "v2"}}


@anyio
async def test_unknown_pod_is_shipped_flagged_and_counted_then_enriched_once_known(tmp_path: Path) -> None:
    cache = StandInCache()
    cache.synced = False  # the API has not answered yet
    log = container_log(tmp_path / "containers")
    append(log, "early-1", "early-2", "early-3")
    col = Collector()
    name = "kube-missing"
    src = FileSource(name, kube_cfg(str(tmp_path / "containers" / "*.log")), col, tmp_path / "data", cache)
    before = counter("ecvi_shipper_kube_enrichment_missing_total", source=name)

    async with Running(src, col) as r:
        await r.until(lambda: len(col.events) >= 3)
        cache.synced = True
        cache.put_pod(pod())
        await r.settle(0.1)
        append(log, "late")
        await r.until(lambda: len(col.events) >= 4)
    events = by_message(col.events)
    for m in ("early-1", "early-2", "early-3"):
        assert events[m].meta["kubernetes_enrichment"] == "missing"
        assert events[m].meta["kubernetes"] == {"namespace": "shop", "pod_name": "api-7d9f-x2x4k",
                                                "container_name": "backend", "container_id": CID}
    assert "kubernetes_enrichment" not in events["late"].meta
    assert events["late"].meta["kubernetes"]["container_image"] == "reg/api:1.2"
    assert counter("ecvi_shipper_kube_enrichment_missing_total", source=name) - before == 3


@anyio
async def test_no_client_means_path_metadata_not_a_dead_source(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    """A kubeconfig that cannot be read costs the API metadata, not the node's shipping."""
    log = container_log(tmp_path / "containers")
    append(log, "still shipped")
    col = Collector()
    cfg = kube_cfg(str(tmp_path / "containers" / "*.log"), kubeconfig=str(tmp_path / "missing-kubeconfig"))
    src = FileSource("kube-noclient", cfg, col, tmp_path / "data")

    with caplog.at_level(logging.ERROR, logger="shipper.sources.file"):
        async with Running(src, col) as r:
            await r.until(lambda: len(col.events) >= 1)
    assert col.events[0].meta["kubernetes_enrichment"] == "missing"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "sources.kube-noclient.kubernetes_api" in errors[0]
    assert "\n" not in errors[0] and not any(r.exc_info for r in caplog.records)


# -- exclusion ------------------------------------------------------------------------------------


@anyio
async def test_excluded_pod_namespace_and_container_are_not_shipped(tmp_path: Path) -> None:
    cache = StandInCache()
    cache.put_namespace(namespace("shop"))
    cache.put_namespace(namespace("noisy", annotations={"ecvi-logs.io/exclude": "true"}))
    cache.put_pod(pod("kept", containers={"backend": "i", "sidecar": "j"},
                      annotations={"ecvi-logs.io/exclude-containers": " sidecar , other"}))
    cache.put_pod(pod("quiet", annotations={"ecvi-logs.io/exclude": "True"}))
    cache.put_pod(pod("loud", ns="noisy"))
    d = tmp_path / "containers"
    for pod_name, ns, container in [("kept", "shop", "backend"), ("kept", "shop", "sidecar"),
                                    ("quiet", "shop", "backend"), ("loud", "noisy", "backend")]:
        append(container_log(d, pod_name, ns, container), f"{pod_name}/{container}")
    # The namespace is excluded even though the API does not know this pod (yet).
    append(container_log(d, "unknown", "noisy", "backend"), "unknown-in-noisy")
    append(container_log(d, "unknown", "shop", "backend"), "unknown-in-shop")
    col = Collector()
    name = "kube-exclude"
    src = FileSource(name, kube_cfg(str(d / "*.log")), col, tmp_path / "data", cache)
    before = counter("ecvi_shipper_files_skipped_total", source=name, reason="excluded")

    async with Running(src, col) as r:
        await r.until(lambda: len(col.events) >= 2)
        await r.settle()
    assert sorted(col.messages()) == ["kept/backend", "unknown-in-shop"]  # unknown pods are shipped
    assert counter("ecvi_shipper_files_skipped_total", source=name, reason="excluded") - before == 4
    assert len(src.store.entries) == 6  # excluded files keep a checkpoint: never re-read from the start


@anyio
async def test_exclusion_appearing_stops_the_file_and_lifting_it_resumes_at_the_end(tmp_path: Path) -> None:
    cache = StandInCache()
    cache.put_pod(pod())
    log = container_log(tmp_path / "containers")
    append(log, "shipped-1")
    col = Collector()
    src = FileSource("kube-toggle", kube_cfg(str(tmp_path / "containers" / "*.log")), col, tmp_path / "data",
                     cache)

    async with Running(src, col) as r:
        await r.until(lambda: len(col.events) >= 1)
        cache.put_pod(pod(annotations={"ecvi-logs.io/exclude": "true"}))
        await r.until(lambda: not src.tailers)
        append(log, "while-excluded-1", "while-excluded-2")
        await r.settle()
        assert col.messages() == ["shipped-1"]
        cache.put_pod(pod())
        await r.until(lambda: bool(src.tailers))
        append(log, "shipped-2")
        await r.until(lambda: len(col.events) >= 2)
        await r.settle()
    # Lines written while excluded are skipped; the file is read again from where it ended then.
    assert col.messages() == ["shipped-1", "shipped-2"]
    (entry,) = src.store.entries.values()
    assert entry["offset"] == log.stat().st_size


@anyio
async def test_checkpoint_of_an_excluded_file_stays_where_reading_stopped(tmp_path: Path) -> None:
    cache = StandInCache()
    cache.put_pod(pod())
    log = container_log(tmp_path / "containers")
    append(log, "a")
    col = Collector()
    src = FileSource("kube-stay", kube_cfg(str(tmp_path / "containers" / "*.log")), col, tmp_path / "data", cache)

    async with Running(src, col) as r:
        await r.until(lambda: len(col.events) >= 1)
        cache.put_pod(pod(annotations={"ecvi-logs.io/exclude-containers": "backend"}))
        await r.until(lambda: not src.tailers)
        append(log, "b")
        await r.settle()
    (entry,) = src.store.entries.values()
    assert entry["offset"] == len(cri_line("a")) and not entry.get("closed")


# -- config ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("api", "extra", "where"), [
    ({}, {}, ("kubernetes_api", "node_name")),
    ({"node_name": " "}, {}, ("kubernetes_api", "node_name")),
    ({"node_name": "n", "max_pods": 0}, {}, ("kubernetes_api", "max_pods")),
    ({"node_name": "n", "delete_grace_secs": -1}, {}, ("kubernetes_api", "delete_grace_secs")),
    ({"node_name": "n", "labels": 1}, {}, ("kubernetes_api", "labels")),
    ({"node_name": "n"}, {"kubernetes_metadata": False}, ()),
])
def test_kubernetes_api_config_problems_name_the_key(api: dict[str, Any], extra: dict[str, Any],
                                                      where: tuple[str, ...]) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        FileSourceConfig.model_validate({"type": "file", "include": ["x"], "kubernetes_api": api, **extra})
    assert info.value.errors()[0]["loc"] == where


def test_the_cache_keeps_the_annotations_the_source_reads() -> None:
    from shipper.kube import models
    from shipper.sources.file import config

    assert {config.EXCLUDE_ANNOTATION, config.EXCLUDE_CONTAINERS_ANNOTATION} == models.ALWAYS_KEPT_ANNOTATIONS


def test_kubernetes_api_defaults() -> None:
    api = kube_cfg("x").kubernetes_api
    assert api is not None
    assert (api.kubeconfig, api.pod_annotations, api.exclude_pod_annotations, api.delete_grace_secs,
            api.max_pods) == (None, ["*"], [LAST_APPLIED], 60.0, 10_000)


@anyio
async def test_deleted_pod_keeps_its_metadata_during_the_grace(tmp_path: Path) -> None:
    cache = StandInCache()
    cache.put_pod(pod())
    log = container_log(tmp_path / "containers")
    append(log, "alive")
    col = Collector()
    src = FileSource("kube-deleted", kube_cfg(str(tmp_path / "containers" / "*.log")), col, tmp_path / "data",
                     cache)

    async with Running(src, col) as r:
        await r.until(lambda: len(col.events) >= 1)
        cache.put_pod(replace(pod(), deleted=True))
        await r.settle(0.1)
        append(log, "last words")
        await r.until(lambda: len(col.events) >= 2)
        cache.drop_pod("shop", "api-7d9f-x2x4k")  # the grace is over
        await r.settle(0.1)
        append(log, "after the grace")
        await r.until(lambda: len(col.events) >= 3)
    events = by_message(col.events)
    assert events["last words"].meta["kubernetes"]["pod_labels"] == {"app.kubernetes.io/name": "api"}
    assert "kubernetes_enrichment" not in events["last words"].meta
    assert events["after the grace"].meta["kubernetes_enrichment"] == "missing"
