"""Send one push request to Loki and read its answer into a :class:`SendOutcome`."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from shipper.event import Event
from shipper.sinks._common.halving import RequestTooLarge
from shipper.sinks._common.outcome import PermanentSinkError, SendOutcome, TransientSinkError
from shipper.sinks._common.retry import parse_retry_after
from shipper.sinks.loki.encoder import PushRequest
from shipper.sinks.loki.rejections import read_rejections

_BODY_CHARS = 2000


def classify_push_response(sink: str, url: str, response: httpx.Response, request: PushRequest,
                           metadata: Callable[[Event], dict[str, str]] | None = None) -> SendOutcome:
    """The outcome of one push; raises for answers that concern the whole request.

    204/2xx: all accepted. 400: the entries Loki names are rejected, the ones it leaves in doubt
    are resent (see :mod:`.rejections`), and a 400 that names none rejects the batch with Loki's
    text. 429, 408 and 5xx: transient, honouring ``Retry-After``. 401/403/404 and other 4xx:
    permanent, with what to check. 413: :class:`RequestTooLarge` (the sink sends the batch in halves).
    """
    status = response.status_code
    if 200 <= status < 300:
        return SendOutcome.ok(len(request.body))
    text = _text(response)
    if status == 400:
        verdict = read_rejections(response.text, request.streams, metadata)
        if not verdict.rejected:
            raise PermanentSinkError(sink, f"http_400: Loki rejected the request: {text}")
        return SendOutcome(
            rejected=verdict.rejected, retry=verdict.unconfirmed, sent_bytes=len(request.body),
            reason=f"http_400: Loki rejected {len(verdict.rejected)} entries and did not confirm "
            f"{len(verdict.unconfirmed)} others (resent; duplicates are dropped by Loki)",
        )
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if status == 429:
        raise TransientSinkError(sink, f"http_429: Loki is rate limiting: {text}", retry_after)
    if status == 408 or status >= 500:
        raise TransientSinkError(sink, f"http_{status}: Loki failed: {text}", retry_after)
    if status == 413:
        raise RequestTooLarge(sink, f"http_413: request of {len(request.body)} bytes is too large for "
                              f"Loki (lower batch.max_bytes): {text}")
    if status in (401, 403):
        raise PermanentSinkError(sink, f"http_{status}: authentication failed at {url}: check auth "
                                 f"(user/password or token) and tenant_id: {text}")
    if status in (404, 405):
        raise PermanentSinkError(sink, f"http_{status}: {url} is not a Loki push endpoint: check "
                                 f"endpoint and path: {text}")
    if 300 <= status < 400:
        raise PermanentSinkError(sink, f"http_{status}: {url} redirects to "
                                 f"{response.headers.get('Location')!r}: set endpoint to the final URL")
    raise PermanentSinkError(sink, f"http_{status}: Loki refused the request: {text}")


async def check_ready(sink: str, client: httpx.AsyncClient, endpoint: str) -> None:
    """Raise a :class:`SinkError` that says what is wrong unless Loki answers ``GET /ready``.

    A gateway in front of Loki may expose only the API: a 404 on ``/ready`` falls back to
    ``/loki/api/v1/status/buildinfo``.
    """
    url = f"{endpoint}/ready"
    try:
        resp = await client.get(url)
        if resp.status_code == 404:
            url = f"{endpoint}/loki/api/v1/status/buildinfo"
            resp = await client.get(url)
    except httpx.HTTPError as exc:
        raise TransientSinkError(sink, f"cannot reach Loki at {url}: {type(exc).__name__}: {exc}") from exc
    if resp.status_code == 200:
        return
    if resp.status_code in (401, 403):
        raise PermanentSinkError(sink, f"authentication failed at {url} (HTTP {resp.status_code}): "
                                 f"check auth and tenant_id: {_text(resp)}")
    raise TransientSinkError(sink, f"Loki at {url} is not ready (HTTP {resp.status_code}): {_text(resp)}")


def _text(response: httpx.Response) -> str:
    text = response.text.strip()
    return text if len(text) <= _BODY_CHARS else text[:_BODY_CHARS] + f"... ({len(text)} chars)"
