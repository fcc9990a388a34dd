"""A small synchronous HTTP client for the jobs: the sinks' auth and TLS options, bounded retries.

Jobs run to completion from a CronJob or a terminal, so a call that keeps failing transiently is
retried a few times (backoff with full jitter, honouring Retry-After) and then reported, rather than
retried forever like the shipper does.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from shipper.errors import BackendError
from shipper.sinks._common.config import RetryConfig
from shipper.sinks._common.http import HttpAuthConfig, TlsConfig
from shipper.sinks._common.retry import backoff_delay, parse_retry_after

_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_BODY_CHARS = 500


class JobHttp:
    """``request`` returns the response of the first non-transient answer, or raises BackendError."""

    def __init__(
        self,
        base_url: str,
        *,
        what: str,
        auth: HttpAuthConfig | None = None,
        tls: TlsConfig | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 60.0,
        attempts: int = 5,
        retry: RetryConfig | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.what = what
        self.attempts = attempts
        self.retry = retry or RetryConfig(initial_backoff_secs=0.5, max_backoff_secs=10.0)
        h = {"User-Agent": "ecvi-logs-jobs", **(headers or {})}
        if auth:
            h.update(auth.headers())
        self.client = httpx.Client(
            base_url=self.base_url,
            auth=auth.httpx_auth() if auth else None,
            verify=tls.ssl_context() if tls else True,
            timeout=timeout,
            headers=h,
            transport=transport,
        )

    def request(self, method: str, path: str, *, ok: tuple[int, ...] = (200,), **kwargs: Any) -> httpx.Response:
        """Send, retrying transient failures; a status outside ``ok`` raises :class:`BackendError`."""
        for attempt in range(1, self.attempts + 1):
            try:
                resp = self.client.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if attempt == self.attempts:
                    raise BackendError(f"{self.what} at {self.base_url}: {method} {path}: "
                                       f"{type(exc).__name__}: {exc}") from exc
                time.sleep(backoff_delay(attempt, self.retry))
                continue
            if resp.status_code in ok:
                return resp
            if resp.status_code in _TRANSIENT_STATUS and attempt < self.attempts:
                time.sleep(backoff_delay(attempt, self.retry, parse_retry_after(resp.headers.get("Retry-After"))))
                continue
            raise BackendError(f"{self.what} at {self.base_url}: {method} {path} answered HTTP "
                               f"{resp.status_code}: {body_excerpt(resp)}")
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        self.client.close()


def body_excerpt(resp: httpx.Response) -> str:
    text = resp.text.strip()
    return text if len(text) <= _BODY_CHARS else text[:_BODY_CHARS] + f"... ({len(text)} chars)"
