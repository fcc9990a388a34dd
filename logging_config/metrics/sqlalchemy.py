"""Connection pool gauges from SQLAlchemy's pool events: active, idle and the pool's maximum.

The gauges move with the events rather than being read at scrape time, which also works in
multiprocess mode (where a scrape runs in another process than the pool). Each event is one
step: a new connection is idle until checked out; a checkout moves one from idle to active and
a checkin back; a closed connection leaves idle (an invalidated checked-out one is closed before
its checkin, which then returns nothing: the two steps net out); a detached one leaves active.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import Pool, QueuePool

from ._registry import DB_ACTIVE, DB_IDLE, DB_MAX

__all__ = ["instrument_pool", "pool_capacity"]


def pool_capacity(pool: Pool) -> float:
    """How many connections the pool hands out at most: ``pool_size + max_overflow`` for a
    QueuePool (infinite with ``max_overflow=-1``), infinite for pools without a bound."""
    if isinstance(pool, QueuePool):
        overflow = getattr(pool, "_max_overflow", 0)
        return math.inf if overflow < 0 else float(pool.size() + overflow)
    return math.inf


def instrument_pool(target: Engine | Pool, name: str = "main") -> None:
    """Keep ``db_connections_{active,idle,max}{pool=name}`` up to date for an engine's pool.

    Call it once per engine, before the first connection, with a name per pool (``main``,
    ``replica``): the pool alert fires per pool and per process.
    """
    pool = target.pool if isinstance(target, Engine) else target
    active, idle = DB_ACTIVE.labels(name), DB_IDLE.labels(name)
    active.set(0)
    idle.set(0)
    DB_MAX.labels(name).set(pool_capacity(pool))

    def on_connect(*_: Any) -> None:
        idle.inc()

    def on_checkout(*_: Any) -> None:
        idle.dec()
        active.inc()

    def on_checkin(*_: Any) -> None:
        active.dec()
        idle.inc()

    def on_close(*_: Any) -> None:
        idle.dec()

    def on_detach(*_: Any) -> None:
        active.dec()

    for name_, handler in (("connect", on_connect), ("checkout", on_checkout), ("checkin", on_checkin),
                           ("close", on_close), ("detach", on_detach)):
        event.listen(pool, name_, handler)
