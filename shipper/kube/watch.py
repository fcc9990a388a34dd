"""List, then watch, one kind of object forever: the reflector loop of client-go, kept small.

The list is paged (``limit``/``continue``); the watch resumes from the last resourceVersion seen
(objects and bookmarks move it). ``410 Gone`` — as the HTTP status or as an ERROR event — means
that version is compacted away, so the kind is listed again. Connection trouble backs off
exponentially with jitter (capped) and retries forever; the first failure and the recovery are
logged once each. A line that is not JSON, or an object the handler refuses, costs that line only.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Any, Protocol

import httpx
import orjson

from shipper import metrics
from shipper.kube.client import KubeApiError, KubeClient
from shipper.kube.models import resource_version

log = logging.getLogger("shipper.kube")

PAGE_LIMIT = 500
RELIST_MIN_SECS = 60.0  # a handler's own re-list requests are granted at most this often
WATCH_TIMEOUT_SECS = (240, 360)  # spread, so many shippers do not re-watch in step
_QUICK_END_SECS = 1.0  # a watch that ends this fast without events is treated as a failure


class WatchHandler(Protocol):
    """What a :class:`ListWatch` feeds: objects of one kind. ``upsert``/``delete`` return False to refuse one.

    ``wants_relist`` asks for a fresh list (objects were refused for lack of room and room is back).
    """

    @property
    def wants_relist(self) -> bool: ...

    def relist_started(self) -> None: ...
    def upsert(self, obj: Any) -> bool: ...
    def delete(self, obj: Any) -> bool: ...
    def relist_done(self) -> None: ...


class _Gone(Exception):
    """The resourceVersion is too old: list again."""


class _Relist(Exception):
    """The handler asked for a fresh list."""


class ListWatch:
    """Keeps ``handler`` in step with the objects at ``path`` (filtered by ``params``)."""

    def __init__(
        self,
        client: KubeClient,
        kind: str,
        path: str,
        handler: WatchHandler,
        *,
        params: dict[str, str] | None = None,
        on_health: Callable[[], None] = lambda: None,
        on_listed: Callable[[], None] = lambda: None,
        backoff_initial_secs: float = 0.5,
        backoff_max_secs: float = 30.0,
    ) -> None:
        self.client = client
        self.kind = kind
        self.path = path
        self.handler = handler
        self.params = dict(params or {})
        self.healthy: bool | None = None  # None until the first answer or failure
        self.listed = False
        self.resource_version: str | None = None
        self._on_health = on_health
        self._on_listed = on_listed
        self._backoff = (backoff_initial_secs, backoff_max_secs)
        self._failures = 0
        self._gone_streak = 0
        self._listed_at = 0.0
        self.relist_min_secs = RELIST_MIN_SECS

    async def run(self) -> None:
        """Run until cancelled; never raises for API trouble."""
        while True:
            try:
                if self.resource_version is not None and self._relist_due():
                    raise _Relist()
                if self.resource_version is None:
                    await self._list()
                started, events = time.monotonic(), await self._watch()
                metrics.KUBE_WATCH_RESTARTS.labels(self.kind, "timeout").inc()
                if events == 0 and time.monotonic() - started < _QUICK_END_SECS:
                    await self._sleep_backoff()
                else:
                    self._gone_streak = self._failures = 0
            except _Relist:
                metrics.KUBE_WATCH_RESTARTS.labels(self.kind, "relist").inc()
                self.resource_version = None
            except _Gone:
                metrics.KUBE_WATCH_RESTARTS.labels(self.kind, "gone").inc()
                self.resource_version = None
                self._gone_streak += 1
                if self._gone_streak == 1:
                    log.info("kubernetes API: %s resourceVersion expired, listing again", self.kind)
                else:  # 410 again straight after a fresh list: a server (or proxy) to back off from
                    await self._sleep_backoff()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any trouble (even a bug) must not end the loop
                metrics.KUBE_WATCH_RESTARTS.labels(self.kind, "error").inc()
                self._set_healthy(False, exc)
                await self._sleep_backoff()

    async def _list(self) -> None:
        params = {**self.params, "limit": str(PAGE_LIMIT)}
        self.handler.relist_started()
        rv: str | None = None
        while True:
            try:
                page = await self.client.get_json(self.path, params)
            except KubeApiError as exc:
                if exc.gone and "continue" in params:  # the continue token expired mid-list
                    raise _Gone() from None
                raise
            if not isinstance(page, dict) or not isinstance(page.get("items"), list):
                raise KubeApiError(f"GET {self.path}: the answer is not a list")
            for item in page["items"]:
                if not self.handler.upsert(item):
                    metrics.KUBE_OBJECTS_REFUSED.labels(self.kind, "malformed").inc()
            meta = page.get("metadata")
            meta = meta if isinstance(meta, dict) else {}
            rv = meta.get("resourceVersion") if isinstance(meta.get("resourceVersion"), str) else rv
            token = meta.get("continue")
            if not isinstance(token, str) or not token:
                break
            params["continue"] = token
        if not rv:
            raise KubeApiError(f"GET {self.path}: the list has no resourceVersion")
        self.handler.relist_done()
        self.resource_version = rv
        self.listed = True
        self._listed_at = time.monotonic()
        self._set_healthy(True)
        self._on_listed()

    async def _watch(self) -> int:
        """Watch from :attr:`resource_version` until the server ends the stream; the number of events."""
        timeout = random.randint(*WATCH_TIMEOUT_SECS)
        params = {**self.params, "watch": "true", "resourceVersion": self.resource_version or "",
                  "allowWatchBookmarks": "true", "timeoutSeconds": str(timeout)}
        events = 0
        try:
            async with self.client.stream_lines(self.path, params, read_timeout_secs=timeout + 30.0) as lines:
                self._set_healthy(True)
                async for line in lines:
                    events += 1
                    self._apply(line)
                    self._gone_streak = self._failures = 0
                    if self._relist_due():
                        raise _Relist()
        except KubeApiError as exc:
            if exc.gone:
                raise _Gone() from None
            raise
        return events

    def _apply(self, line: bytes | None) -> None:
        try:
            event = orjson.loads(line) if line is not None else None
        except orjson.JSONDecodeError:
            event = None
        if not isinstance(event, dict) or not isinstance(event.get("object"), dict):
            metrics.KUBE_OBJECTS_REFUSED.labels(self.kind, "malformed").inc()
            return
        kind, obj = event.get("type"), event["object"]
        if kind == "ERROR":
            code = obj.get("code")
            if code == 410:
                raise _Gone()
            raise KubeApiError(f"watch {self.path}: ERROR event: {str(obj.get('message', ''))[:300]}",
                               code if isinstance(code, int) else None)
        if kind in ("ADDED", "MODIFIED"):
            ok = self.handler.upsert(obj)
        elif kind == "DELETED":
            ok = self.handler.delete(obj)
        else:
            ok = kind == "BOOKMARK"
        if not ok:
            metrics.KUBE_OBJECTS_REFUSED.labels(self.kind, "malformed").inc()
        # The version moves even past a refused object: it was seen, and re-reading it would fail again.
        rv = resource_version(obj)
        if rv is not None:
            self.resource_version = rv

    def _relist_due(self) -> bool:
        return self.handler.wants_relist and time.monotonic() - self._listed_at >= self.relist_min_secs

    async def _sleep_backoff(self) -> None:
        self._failures += 1
        initial, cap = self._backoff
        ceiling = min(cap, initial * 2 ** min(self._failures - 1, 30))
        await asyncio.sleep(ceiling / 2 + random.uniform(0, ceiling / 2))

    def _set_healthy(self, healthy: bool, exc: BaseException | None = None) -> None:
        if healthy == self.healthy:
            return
        was, self.healthy = self.healthy, healthy
        if healthy and was is False:
            log.info("kubernetes API: %s list/watch recovered", self.kind)
        elif not healthy:
            log.warning("kubernetes API: %s list/watch failing, retrying with backoff: %s", self.kind,
                        _describe(exc))
        self._on_health()


def _describe(exc: BaseException | None) -> str:
    if isinstance(exc, httpx.HTTPError | KubeApiError):
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return f"{type(exc).__name__}: {exc}"
