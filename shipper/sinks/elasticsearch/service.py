"""Send one ``_bulk`` request and read Elasticsearch's answer, item by item."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import cramjam
import httpx
import orjson

from shipper import metrics
from shipper.event import Event
from shipper.sinks._common.halving import RequestTooLarge, send_halving
from shipper.sinks._common.http import post_body
from shipper.sinks._common.outcome import PermanentSinkError, SendOutcome, TransientSinkError
from shipper.sinks._common.retry import parse_retry_after
from shipper.sinks.elasticsearch.encoder import BulkBatch

#: Keep only what classification needs. Each item keeps its ``status``, so items stay in request
#: order (filtering on ``items.*.error`` alone drops the successful ones and loses positions).
BULK_FILTER_PATH = "errors,items.*.status,items.*.error"
_MAX_REASON = 2000

log = logging.getLogger("shipper.sinks.elasticsearch")


@dataclass(slots=True)
class BulkResult:
    """A bulk answer: the outcome for the delivery, and how many creates found their id already there."""

    outcome: SendOutcome = field(default_factory=SendOutcome)
    duplicates: int = 0


def describe_error(error: Any) -> str:
    """``type: reason (caused by type: reason)`` from an Elasticsearch error object."""
    if not isinstance(error, dict):
        return str(error)[:_MAX_REASON]
    text = f"{error.get('type', 'error')}: {error.get('reason', '')}"
    cause = error.get("caused_by")
    if isinstance(cause, dict):
        text += f" (caused by {cause.get('type', 'error')}: {cause.get('reason', '')})"
    return text[:_MAX_REASON]


def _item_conflict(item: dict[str, Any]) -> bool:
    error = item.get("error")
    return isinstance(error, dict) and error.get("type") == "version_conflict_engine_exception"


def classify_bulk_response(events: list[Event], body: bytes | dict[str, Any],
                           retry_after: float | None = None) -> BulkResult:
    """Per-item results of a 200 bulk answer for ``events`` (in request order).

    2xx: indexed. 409 ``version_conflict_engine_exception`` on ``create``: the id is already there
    (a resend), so it counts as delivered. 429 and 5xx: retried, only those events. Any other
    status: rejected with Elasticsearch's reason. Items missing from the answer are retried.
    """
    data: Any = body
    if isinstance(body, bytes):
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = body[:200].decode("utf-8", "replace")
    result = BulkResult()
    if not isinstance(data, dict) or not isinstance(data.get("items", []), list):
        reason = f"unexpected bulk response: {str(data)[:200]}"
        result.outcome = SendOutcome(retry=list(events), reason=reason, retry_after=retry_after)
        return result
    if data.get("errors") is False:
        return result
    items: list[Any] = data.get("items") or []
    out = result.outcome
    for i, event in enumerate(events):
        if i >= len(items) or not isinstance(items[i], dict) or not items[i]:
            out.retry.append(event)
            out.reason = out.reason or "bulk response lacks this item"
            continue
        item = next(iter(items[i].values()))
        status = int(item.get("status", 0)) if isinstance(item, dict) else 0
        if 200 <= status < 300:
            continue
        if status == 409 and _item_conflict(item):
            result.duplicates += 1
        elif status == 429 or status >= 500 or status == 0:
            out.retry.append(event)
            out.reason = out.reason or describe_error(item.get("error", f"status {status}"))
        else:
            out.rejected.append((event, describe_error(item.get("error", f"status {status}"))))
    if out.retry:
        out.retry_after = retry_after
    return result


class BulkService:
    """Posts encoded batches to ``<endpoint>/_bulk`` and classifies the answer."""

    def __init__(
        self, sink: str, client: httpx.AsyncClient, endpoint: str, compression: str = "none"
    ) -> None:
        self.sink = sink
        self.client = client
        self.url = endpoint.rstrip("/") + "/_bulk"
        self.compression = compression
        self.duplicates = 0

    async def send(self, batch: BulkBatch) -> SendOutcome:
        """One attempt; a body the server finds too large (413) is halved until it fits."""
        return await send_halving(batch, self._post, BulkBatch.split, _events_of, sink=self.sink)

    async def _post(self, batch: BulkBatch) -> SendOutcome:
        body = batch.body
        headers = {"Content-Type": "application/x-ndjson"}
        if self.compression == "gzip":
            body = bytes(cramjam.gzip.compress(body, level=1))
            headers["Content-Encoding"] = "gzip"
        response = await post_body(self.client, self.url, body, headers, params={"filter_path": BULK_FILTER_PATH})
        if response.status_code == 413:
            raise RequestTooLarge(self.sink, _too_large_reason(len(batch.events), len(body)))
        if not 200 <= response.status_code < 300:
            raise_for_request_error(self.sink, response)
        result = classify_bulk_response(
            batch.events, response.content, parse_retry_after(response.headers.get("retry-after"))
        )
        if result.duplicates:
            self.duplicates += result.duplicates
            metrics.DUPLICATES_AVOIDED.labels(self.sink).inc(result.duplicates)
            log.debug("sink %s: %d documents were already indexed (resent)", self.sink, result.duplicates)
        result.outcome.sent_bytes = len(body)
        return result.outcome


def _events_of(batch: BulkBatch) -> list[Event]:
    return batch.events


def _too_large_reason(documents: int, size: int) -> str:
    limit = "over the server's http.max_content_length"
    if documents == 1:
        return f"request_entity_too_large: a single document makes a {size}-byte request, {limit}"
    return f"request_entity_too_large: a {size}-byte request of {documents} documents is {limit}"


def raise_for_request_error(sink: str, response: httpx.Response) -> None:
    """Raise for a whole-request failure (the caller handles 2xx and 413 itself).

    429, 408 and 5xx are transient (honouring Retry-After); 401/403 and any other 4xx are permanent:
    resending the same request cannot succeed.
    """
    status = response.status_code
    reason = f"HTTP {status}: {error_text(response)}"
    if status in (408, 429) or status >= 500:
        raise TransientSinkError(sink, reason, parse_retry_after(response.headers.get("retry-after")))
    if status in (401, 403):
        raise PermanentSinkError(sink, f"{reason} (check api_key / auth and the key's privileges)")
    raise PermanentSinkError(sink, reason)


def error_text(response: httpx.Response) -> str:
    """Elasticsearch's error (``type: reason``) from a failed response, or the start of its body."""
    try:
        data = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text[:300].strip() or response.reason_phrase
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        return describe_error(data["error"])
    return str(data)[:300]
