"""KubeMetadataCache against an in-memory API: paging, watch resume, 410, outages, bounds and grace."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from shipper import metrics
from shipper.kube import KubeClient, KubeMetadataCache
from shipper.kube.watch import PAGE_LIMIT, WATCH_TIMEOUT_SECS
from tests.shipper.kube._fakeapi import FakeApi, make_namespace, make_pod


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


async def until(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def make_cache(api: FakeApi, **kwargs: Any) -> KubeMetadataCache:
    client = KubeClient("https://127.0.0.1:6443", token="t", transport=api.transport())
    kwargs.setdefault("backoff_initial_secs", 0.01)
    kwargs.setdefault("backoff_max_secs", 0.05)
    return KubeMetadataCache(client, node_name="node-a", **kwargs)


@contextlib.asynccontextmanager
async def synced_cache(api: FakeApi, **kwargs: Any) -> AsyncIterator[KubeMetadataCache]:
    cache = make_cache(api, **kwargs)
    await cache.start()
    try:
        assert await cache.wait_synced(timeout=5)
        yield cache
    finally:
        await cache.stop()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_lists_in_pages_then_watches_from_the_lists_version() -> None:
    api = FakeApi()
    for i in range(PAGE_LIMIT * 2 + 100):
        api.add("pods", make_pod(f"p{i}"))
    for i in range(5):
        api.add("pods", make_pod(f"other{i}", node="node-b"))
    api.add("namespaces", make_namespace("default", labels={"team": "core"}))

    async def go() -> None:
        async with synced_cache(api) as cache:
            assert cache.pod("default", "p0") is not None
            assert cache.pod("default", f"p{PAGE_LIMIT * 2 + 99}") is not None
            assert cache.pod("default", "other0") is None
            ns = cache.namespace("default")
            assert ns is not None and dict(ns.labels) == {"team": "core"}
            await until(lambda: len(api.requests_for("pods", watch=True)) == 1)

    run(go())
    lists = api.requests_for("pods", watch=False)
    assert [q.get("continue") for q in lists] == [None, f"{PAGE_LIMIT}:{api.rv}", f"{PAGE_LIMIT * 2}:{api.rv}"]
    assert all(q["limit"] == str(PAGE_LIMIT) and q["fieldSelector"] == "spec.nodeName=node-a" for q in lists)
    watch = api.requests_for("pods", watch=True)[0]
    assert watch["resourceVersion"] == str(api.rv)
    assert watch["allowWatchBookmarks"] == "true" and watch["fieldSelector"] == "spec.nodeName=node-a"
    assert WATCH_TIMEOUT_SECS[0] <= int(watch["timeoutSeconds"]) <= WATCH_TIMEOUT_SECS[1]
    assert "fieldSelector" not in api.requests_for("namespaces", watch=True)[0]


def test_watch_events_change_pods_and_move_the_generation_only_on_visible_changes() -> None:
    api = FakeApi()
    api.add("pods", make_pod("web", labels={"app": "web"}))

    async def go() -> None:
        async with synced_cache(api) as cache:
            gen = cache.generation
            api.add("pods", make_pod("web", labels={"app": "web", "tier": "front"}))
            await until(lambda: (p := cache.pod("default", "web")) is not None and "tier" in p.labels)
            assert cache.generation > gen
            gen = cache.generation
            status_only = make_pod("web", labels={"app": "web", "tier": "front"})
            status_only["status"] = {"phase": "Running"}
            api.add("pods", status_only)
            api.add("pods", make_pod("late"))
            await until(lambda: cache.pod("default", "late") is not None)
            assert cache.generation == gen + 1  # the status-only change moved nothing

    run(go())


def test_watch_resumes_from_the_last_bookmark_without_listing_again() -> None:
    api = FakeApi()
    api.add("pods", make_pod("a"))

    async def go() -> int:
        async with synced_cache(api) as cache:
            await until(lambda: len(api.requests_for("pods", watch=True)) == 1)
            api.add("pods", make_pod("b"))
            api.bookmark("pods")
            bookmark_rv = api.rv
            await until(lambda: cache._watches[0].resource_version == str(bookmark_rv))
            api.end_watches()  # the server's timeoutSeconds ends the stream
            await until(lambda: len(api.requests_for("pods", watch=True)) >= 2)
            api.reopen()
        return bookmark_rv

    bookmark_rv = run(go())
    assert api.requests_for("pods", watch=True)[1]["resourceVersion"] == str(bookmark_rv)
    assert len(api.requests_for("pods", watch=False)) == 1


@pytest.mark.parametrize("as_event", [False, True], ids=["http-410", "error-event-410"])
def test_gone_lists_again_and_a_pod_missing_from_the_new_list_gets_its_grace(as_event: bool) -> None:
    api = FakeApi()
    api.gone_as_event = as_event
    api.add("pods", make_pod("stays"))
    api.add("pods", make_pod("vanishes"))
    clock = FakeClock()

    async def go() -> None:
        async with synced_cache(api, delete_grace_secs=60.0, clock=clock) as cache:
            await until(lambda: len(api.requests_for("pods", watch=True)) == 1)
            before = sample("ecvi_shipper_kube_watch_restarts_total", kind="pod", reason="gone")
            api.fail_requests = 0
            api.silently_delete("pods", "default", "vanishes")
            api.add("pods", make_pod("new"))
            api.compact()  # the watch cannot resume: its version is gone
            api.drop_watches()
            await until(lambda: cache.pod("default", "new") is not None)
            assert len(api.requests_for("pods", watch=False)) == 2
            assert sample("ecvi_shipper_kube_watch_restarts_total", kind="pod", reason="gone") == before + 1
            vanished = cache.pod("default", "vanishes")
            assert vanished is not None and vanished.deleted
            assert not cache.pod("default", "stays").deleted  # type: ignore[union-attr]
            clock.now += 61
            assert cache.pod("default", "vanishes") is None

    run(go())


def test_connection_drop_backs_off_then_resumes_the_watch_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="shipper.kube")
    api = FakeApi()
    api.add("pods", make_pod("a"))

    async def go() -> str | None:
        async with synced_cache(api) as cache:
            await until(lambda: len(api.requests_for("pods", watch=True)) == 1)
            assert sample("ecvi_shipper_kube_api_up") == 1
            rv = cache._watches[0].resource_version
            api.down = True
            api.drop_watches()
            await until(lambda: sample("ecvi_shipper_kube_api_up") == 0)
            await asyncio.sleep(0.3)  # many failed attempts while down
            assert cache.pod("default", "a") is not None  # still served
            api.add("pods", make_pod("made-while-down"))
            api.down = False
            await until(lambda: cache.pod("default", "made-while-down") is not None)
            await until(lambda: sample("ecvi_shipper_kube_api_up") == 1)
        return rv

    rv = run(go())
    assert len(api.requests_for("pods", watch=False)) == 1  # resumed, not re-listed
    watches = api.requests_for("pods", watch=True)
    assert len(watches) >= 4 and {w["resourceVersion"] for w in watches} == {rv}
    failing = [r for r in caplog.records if "failing" in r.getMessage() and "pod" in r.getMessage()]
    recovered = [r for r in caplog.records if "recovered" in r.getMessage() and "pod" in r.getMessage()]
    assert len(failing) == 1 and len(recovered) == 1
    assert all(r.exc_info is None for r in caplog.records)


def test_backoff_grows_exponentially_up_to_its_cap() -> None:
    api = FakeApi()
    api.down = True

    async def go() -> None:
        cache = make_cache(api, backoff_initial_secs=0.01, backoff_max_secs=0.08)
        await cache.start()
        await asyncio.sleep(1.5)
        await cache.stop()

    run(go())
    # Waits are ceiling/2..ceiling for ceilings 0.01, 0.02, 0.04, 0.08, 0.08, ...: about 20..40 attempts in
    # 1.5 s. Without growth it would be over 100; without the cap (0.16, 0.32, ...) under 10.
    attempts = len(api.requests_for("pods", watch=False))
    assert 12 <= attempts <= 60, attempts


def test_start_never_raises_while_the_api_is_down_and_syncs_when_it_comes() -> None:
    api = FakeApi()
    api.down = True
    api.add("pods", make_pod("a"))

    async def go() -> None:
        cache = make_cache(api)
        await cache.start()
        assert not await cache.wait_synced(timeout=0.2)
        assert cache.pod("default", "a") is None and not cache.synced
        assert sample("ecvi_shipper_kube_api_up") == 0
        api.down = False
        assert await cache.wait_synced(timeout=5)
        assert cache.pod("default", "a") is not None
        await cache.stop()

    run(go())


def test_malformed_watch_lines_cost_only_themselves() -> None:
    api = FakeApi()
    api.extra_lines["pods"] = [
        b"this is not json",
        b"[1, 2]",
        b'{"type": "ADDED", "object": {"metadata": {"name": "no-namespace"}, "spec": {}}}',
        b'{"type": "ADDED", "object": {"metadata": {"name": "x", "namespace": "d", "uid": "u", '
        b'"resourceVersion": "1"}, "spec": {"containers": "not a list"}}}',
        b'{"type": "MODIFIED"}',
        b"\xff\xfe",
    ]
    before = sample("ecvi_shipper_kube_objects_refused_total", kind="pod", reason="malformed")

    async def go() -> None:
        async with synced_cache(api) as cache:
            await until(lambda: len(api.requests_for("pods", watch=True)) == 1)
            api.add("pods", make_pod("good"))
            await until(lambda: cache.pod("default", "good") is not None)

    run(go())
    assert sample("ecvi_shipper_kube_objects_refused_total", kind="pod", reason="malformed") == before + 6
    assert len(api.requests_for("pods", watch=True)) == 1  # the stream went on


def test_max_pods_refuses_new_pods_but_a_deleted_one_makes_room() -> None:
    api = FakeApi()
    for i in range(5):
        api.add("pods", make_pod(f"p{i}"))
    before = sample("ecvi_shipper_kube_objects_refused_total", kind="pod", reason="over_limit")

    async def go() -> None:
        async with synced_cache(api, max_pods=3) as cache:
            cached = [i for i in range(5) if cache.pod("default", f"p{i}") is not None]
            assert len(cached) == 3
            assert sample("ecvi_shipper_kube_objects_refused_total", kind="pod", reason="over_limit") == before + 2
            assert sample("ecvi_shipper_kube_cache_objects", kind="pod") == 3
            api.delete("pods", "default", f"p{cached[0]}")
            await until(lambda: (p := cache.pod("default", f"p{cached[0]}")) is not None and p.deleted)
            api.add("pods", make_pod("fresh"))
            await until(lambda: cache.pod("default", "fresh") is not None)
            assert cache.pod("default", f"p{cached[0]}") is None  # the deleted one made room

    run(go())


def test_deleted_pod_is_kept_for_the_grace_then_dropped() -> None:
    api = FakeApi()
    api.add("pods", make_pod("job", labels={"app": "batch"}))
    clock = FakeClock()

    async def go() -> None:
        async with synced_cache(api, delete_grace_secs=0.2, clock=clock) as cache:
            api.delete("pods", "default", "job")
            await until(lambda: (p := cache.pod("default", "job")) is not None and p.deleted)
            pod = cache.pod("default", "job")
            assert pod is not None and dict(pod.labels) == {"app": "batch"}
            await asyncio.sleep(0.2)  # sweeps run; the clock has not moved
            assert cache.pod("default", "job") is not None
            gen = cache.generation
            clock.now += 0.25
            assert cache.pod("default", "job") is None
            await until(lambda: sample("ecvi_shipper_kube_cache_objects", kind="pod") == 0)
            assert cache.generation == gen + 1  # dropping it is a change readers see

    run(go())


def test_a_recreated_pod_replaces_its_deleted_namesake() -> None:
    api = FakeApi()
    api.add("pods", make_pod("db-0", uid="old"))

    async def go() -> None:
        async with synced_cache(api) as cache:
            api.delete("pods", "default", "db-0")
            await until(lambda: cache.pod("default", "db-0").deleted)  # type: ignore[union-attr]
            api.add("pods", make_pod("db-0", uid="new"))
            await until(lambda: cache.pod("default", "db-0").uid == "new")  # type: ignore[union-attr]
            assert not cache.pod("default", "db-0").deleted  # type: ignore[union-attr]

    run(go())


def test_namespaces_are_watched_with_their_exclusion_annotations() -> None:
    api = FakeApi()
    api.add("namespaces", make_namespace("batch", labels={"team": "data"},
                                         annotations={"ecvi-logs.io/exclude": "true", "other": "x"}))

    async def go() -> None:
        async with synced_cache(api) as cache:
            ns = cache.namespace("batch")
            assert ns is not None and dict(ns.annotations) == {"ecvi-logs.io/exclude": "true"}
            api.add("namespaces", make_namespace("batch", labels={"team": "ml"}))
            await until(lambda: cache.namespace("batch").labels.get("team") == "ml")  # type: ignore[union-attr]
            gen = cache.generation
            api.delete("namespaces", "", "batch")
            await until(lambda: cache.generation > gen)
            assert cache.namespace("batch") is not None  # kept for the grace, like pods

    run(go())


def test_a_forbidden_answer_is_retried_with_backoff_not_raised() -> None:
    calls = []

    async def go() -> None:
        def deny(request: httpx.Request) -> httpx.Response:
            calls.append(request)
            return httpx.Response(403, json={"kind": "Status", "message": "pods is forbidden"})

        client = KubeClient("https://127.0.0.1:6443", token="t", transport=httpx.MockTransport(deny))
        cache = KubeMetadataCache(client, "node-a", backoff_initial_secs=0.01, backoff_max_secs=0.02)
        await cache.start()
        assert not await cache.wait_synced(timeout=0.3)
        await cache.stop()

    run(go())
    assert len(calls) > 4


@pytest.mark.timeout(30)  # a tight re-list loop never yields to the event loop's own timeout
def test_a_server_answering_every_watch_with_410_is_backed_off_not_hammered(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="shipper.kube")
    api = FakeApi()
    api.add("pods", make_pod("a"))
    api.compacted = 10**9  # every watch is "too old", however fresh its list

    async def go() -> None:
        async with synced_cache(api, backoff_initial_secs=0.01, backoff_max_secs=0.08) as cache:
            await asyncio.sleep(1.0)
            assert cache.pod("default", "a") is not None

    run(go())
    assert 5 <= len(api.requests_for("pods", watch=False)) <= 40
    assert len([r for r in caplog.records if "pod resourceVersion expired" in r.getMessage()]) == 1


def test_pods_refused_while_full_are_listed_again_once_there_is_room() -> None:
    api = FakeApi()
    for i in range(3):
        api.add("pods", make_pod(f"p{i}"))
    clock = FakeClock()

    async def go() -> None:
        async with synced_cache(api, max_pods=2, delete_grace_secs=0.04, clock=clock) as cache:
            cache._watches[0].relist_min_secs = 0.0
            refused = next(f"p{i}" for i in range(3) if cache.pod("default", f"p{i}") is None)
            kept = next(f"p{i}" for i in range(3) if cache.pod("default", f"p{i}") is not None)
            await asyncio.sleep(0.1)
            assert len(api.requests_for("pods", watch=False)) == 1  # full, and no room: no re-list
            api.delete("pods", "default", kept)
            await until(lambda: cache.pod("default", kept).deleted)  # type: ignore[union-attr]
            clock.now += 1  # the grace is over: the sweep drops it, and there is room
            await until(lambda: len(cache._pods) == 1)
            api.bookmark("pods")  # the watch looks at each line (kube-apiserver bookmarks about every minute)
            await until(lambda: cache.pod("default", refused) is not None)
            assert cache.pod("default", kept) is None

    run(go())
    assert len(api.requests_for("pods", watch=False)) == 2
    assert sample("ecvi_shipper_kube_watch_restarts_total", kind="pod", reason="relist") >= 1
