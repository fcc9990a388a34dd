"""Realistic records for the benchmarks: logging_config JSON (~300 bytes), CRI-wrapped, 5% with tracebacks."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson

_TRACE = (
    "Traceback (most recent call last):\n"
    '  File "/app/app/services/verification.py", line 88, in verify\n'
    "    result = await registry.lookup(company.registration_number)\n"
    '  File "/app/app/clients/registry.py", line 41, in lookup\n'
    "    raise RegistryUnavailable(resp.status_code)\n"
    "app.clients.registry.RegistryUnavailable: 503"
)


def records(n: int, seed: int = 1, start: datetime | None = None, per_ms: int = 1) -> Iterator[dict[str, object]]:
    """``n`` records; ``per_ms`` consecutive ones share a millisecond (1: each its own, as real logs)."""
    rng = random.Random(seed)
    t0 = start or datetime.now(UTC) - timedelta(minutes=10)
    loggers = ["app.api.v1.companies", "app.api.v1.verifications", "app.worker.tasks", "uvicorn.access"]
    for i in range(n):
        ts = t0 + timedelta(milliseconds=i // per_ms)
        rec: dict[str, object] = {
            "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z",
            "level": "ERROR" if i % 20 == 0 else "INFO",
            "logger": loggers[i % len(loggers)],
            "message": "Company verification finished" if i % 20 else "Verification failed",
            "request_id": uuid.UUID(int=rng.getrandbits(128)).hex,
            "user_id": f"user-{rng.randrange(500)}",
            "company_id": str(uuid.UUID(int=rng.getrandbits(128))),
            "service": "ecvi-backend",
            "environment": "production",
            "version": "1.4.2",
            "seq": i,
            "duration_ms": round(rng.uniform(1, 900), 2),
        }
        if i % 20 == 0:
            rec["exception"] = {"type": "RegistryUnavailable", "message": "503", "stacktrace": _TRACE}
        yield rec


def cri_lines(n: int, seed: int = 1, per_ms: int = 1) -> Iterator[bytes]:
    """CRI log lines as the kubelet writes them: the kubelet's time a little after the record's own."""
    for rec in records(n, seed, per_ms=per_ms):
        kubelet = str(rec["timestamp"])[:-1] + "417250Z"
        yield kubelet.encode() + b" stdout F " + orjson.dumps(rec) + b"\n"
