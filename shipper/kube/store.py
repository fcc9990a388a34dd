"""A bounded map of one kind of object, kept in step by a :class:`~shipper.kube.watch.ListWatch`.

Deleted objects stay for a grace period (a pod's files still have last lines to ship after the pod is
gone); a re-list that no longer contains an object starts its grace too, rather than dropping it at
once. At most ``max_items`` are held: beyond that a deleted object in its grace makes room, else the
new object is refused and counted, so memory stays bounded whatever the cluster holds; once there
is room again, :attr:`ObjectStore.wants_relist` asks for a list that brings the refused ones in.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from shipper import metrics
from shipper.kube.models import MalformedObject

log = logging.getLogger("shipper.kube")

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class ObjectStore(Generic[K, T]):
    """Objects of ``kind`` by key; ``on_change`` is called after every change readers could see."""

    def __init__(
        self,
        kind: str,
        parse: Callable[[Any], T],
        key: Callable[[T], K],
        *,
        max_items: int,
        grace_secs: float,
        on_change: Callable[[], None],
        mark_deleted: Callable[[T], T] = lambda item: item,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kind = kind
        self._parse = parse
        self._key = key
        self._max = max_items
        self._grace = grace_secs
        self._on_change = on_change
        self._mark_deleted = mark_deleted
        self._clock = clock
        self._items: dict[K, T] = {}
        self._deadlines: dict[K, float] = {}  # deleted keys, in deletion (hence deadline) order
        self._seen: set[K] | None = None
        self._full_logged = False
        self._refused = 0  # objects refused for the bound since the last list began

    @property
    def wants_relist(self) -> bool:
        """True when objects were refused for the bound and there is room now: a list would bring them."""
        return self._refused > 0 and len(self._items) < self._max

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> T | None:
        """The object under ``key``; a deleted one until its grace is over. No I/O."""
        item = self._items.get(key)
        if item is not None and key in self._deadlines and self._deadlines[key] <= self._clock():
            return None
        return item

    def relist_started(self) -> None:
        self._seen = set()
        self._refused = 0

    def relist_done(self) -> None:
        seen, self._seen = self._seen or set(), None
        gone = [k for k in self._items if k not in seen and k not in self._deadlines]
        for k in gone:
            self._start_grace(k)
        if gone:
            self._changed()

    def upsert(self, obj: Any) -> bool:
        try:
            item = self._parse(obj)
        except MalformedObject:
            return False
        key = self._key(item)
        if self._seen is not None:
            self._seen.add(key)
        old = self._items.get(key)
        if old is None and len(self._items) >= self._max and not self._make_room():
            metrics.KUBE_OBJECTS_REFUSED.labels(self.kind, "over_limit").inc()
            self._refused += 1
            if not self._full_logged:
                self._full_logged = True
                log.warning("kubernetes metadata cache: %s limit %d reached; new ones are not cached",
                            self.kind, self._max)
            return True
        self._deadlines.pop(key, None)
        if old != item:
            self._items[key] = item
            self._changed()
        return True

    def delete(self, obj: Any) -> bool:
        try:
            key = self._key(self._parse(obj))
        except MalformedObject:
            return False
        if key in self._items and key not in self._deadlines:
            self._start_grace(key)
            self._changed()
        return True

    def expire(self) -> int:
        """Drop deleted objects whose grace is over; how many were dropped."""
        now = self._clock()
        done = [k for k, deadline in self._deadlines.items() if deadline <= now]
        for k in done:
            del self._deadlines[k]
            del self._items[k]
        if done:
            self._changed()
        return len(done)

    def _start_grace(self, key: K) -> None:
        self._items[key] = self._mark_deleted(self._items[key])
        self._deadlines[key] = self._clock() + self._grace

    def _make_room(self) -> bool:
        """Drop the deleted object closest to its deadline, if any: a live object is worth more."""
        if not self._deadlines:
            return False
        oldest = next(iter(self._deadlines))
        del self._deadlines[oldest]
        del self._items[oldest]
        return True

    def _changed(self) -> None:
        metrics.KUBE_CACHE_OBJECTS.labels(self.kind).set(len(self._items))
        self._on_change()
