"""Exponential backoff with full jitter, bounded, honouring the backend's Retry-After."""

from __future__ import annotations

import random
from email.utils import parsedate_to_datetime
from time import time

from shipper.sinks._common.config import RetryConfig


def backoff_delay(attempt: int, cfg: RetryConfig, retry_after: float | None = None) -> float:
    """Seconds to wait before attempt ``attempt + 1`` (attempt counts from 1).

    Full jitter (uniform in [0, min(max, initial * 2**(attempt-1))]) spreads retries of many
    shippers; a Retry-After from the backend is a floor, capped at ``max_backoff_secs``.
    """
    cap = min(cfg.max_backoff_secs, cfg.initial_backoff_secs * (2 ** min(attempt - 1, 30)))
    delay = random.uniform(0, cap)
    if retry_after is not None:
        delay = max(delay, min(retry_after, cfg.max_backoff_secs))
    return delay


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time())
    except (TypeError, ValueError):
        return None
