"""Events and configs for the s3 sink's tests."""

from __future__ import annotations

from typing import Any

import orjson

from shipper.event import Event
from shipper.sinks.s3.config import S3SinkConfig
from tests.factories import event

# 2025-01-15T00:00:00Z
DAY0_NS = 1_736_899_200 * 1_000_000_000
HOUR_NS = 3600 * 1_000_000_000


def make_config(url: str, **kw: Any) -> S3SinkConfig:
    return S3SinkConfig.model_validate({"type": "s3", "inputs": ["app"], "url": url, "node": "node-a", **kw})


def make_event(n: int, ts_ns: int, **fields: Any) -> Event:
    """Event number ``n`` as the file source makes it (a JSON line parsed on demand, a file id)."""
    record = {"level": "info", "message": f"event {n}", "service": "api", **fields}
    return event(raw=orjson.dumps(record).decode(), ts_ns=ts_ns,
                 meta={"id": f"file:{n * 100}", "source": "app", "kubernetes": {"pod_name": "api-1"}})
