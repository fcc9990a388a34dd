"""Reading Elasticsearch's bulk answers: per item, and for the request as a whole."""

from __future__ import annotations

import gzip
from collections.abc import Callable

import httpx
import orjson
import pytest

from shipper.sinks._common.outcome import PermanentSinkError, SendOutcome, TransientSinkError
from shipper.sinks.elasticsearch.encoder import BulkEncoder
from shipper.sinks.elasticsearch.service import BulkService, classify_bulk_response, describe_error

from ._support import (
    CONFLICT,
    CREATED,
    DOCUMENT_PARSING,
    FIELD_LIMIT,
    MAPPER_PARSING,
    THROTTLED,
    UNAVAILABLE,
    bulk_answer,
    make_event,
)

Handler = Callable[[httpx.Request], httpx.Response]


def test_all_created() -> None:
    events = [make_event(n) for n in range(3)]
    result = classify_bulk_response(events, bulk_answer(CREATED, CREATED, CREATED))
    assert result.outcome == SendOutcome() and result.duplicates == 0


def test_conflict_on_create_is_a_duplicate_avoided() -> None:
    events = [make_event(n) for n in range(2)]
    result = classify_bulk_response(events, bulk_answer(CREATED, CONFLICT))
    assert result.outcome.retry == [] and result.outcome.rejected == []
    assert result.duplicates == 1


def test_only_throttled_and_unavailable_items_are_retried() -> None:
    events = [make_event(n) for n in range(4)]
    result = classify_bulk_response(events, bulk_answer(CREATED, THROTTLED, UNAVAILABLE, CREATED),
                                    retry_after=2.0)
    assert result.outcome.retry == [events[1], events[2]]
    assert result.outcome.rejected == []
    assert result.outcome.reason.startswith("es_rejected_execution_exception: rejected execution")
    assert result.outcome.retry_after == 2.0


@pytest.mark.parametrize("answer", [MAPPER_PARSING, DOCUMENT_PARSING, FIELD_LIMIT])
def test_client_errors_are_rejected_with_the_reason(answer: dict) -> None:
    events = [make_event(n) for n in range(2)]
    result = classify_bulk_response(events, bulk_answer(answer, CREATED))
    assert result.outcome.retry == []
    [(event, reason)] = result.outcome.rejected
    assert event is events[0]
    error = answer["create"]["error"]
    assert reason.startswith(f"{error['type']}: {error['reason']}")


def test_reason_names_the_cause() -> None:
    assert describe_error(DOCUMENT_PARSING["create"]["error"]).endswith(
        "(caused by illegal_argument_exception: failed to parse date field [not-a-date] with format "
        "[strict_date_optional_time||epoch_millis])")


def test_mixed_answer() -> None:
    events = [make_event(n) for n in range(6)]
    answer = bulk_answer(CREATED, CONFLICT, THROTTLED, MAPPER_PARSING, UNAVAILABLE, DOCUMENT_PARSING)
    result = classify_bulk_response(events, answer)
    assert result.outcome.retry == [events[2], events[4]]
    assert [(e, r.split(":")[0]) for e, r in result.outcome.rejected] == [
        (events[3], "mapper_parsing_exception"), (events[5], "document_parsing_exception")]
    assert result.duplicates == 1


def test_missing_or_garbled_items_are_retried_not_lost() -> None:
    events = [make_event(n) for n in range(3)]
    short = classify_bulk_response(events, orjson.dumps({"errors": True, "items": [CREATED]}))
    assert short.outcome.retry == events[1:]
    garbled = classify_bulk_response(events, b"<html>proxy error</html>")
    assert garbled.outcome.retry == events
    assert garbled.outcome.reason.startswith("unexpected bulk response")


# -- the request as a whole ----------------------------------------------------------------------

async def _send(handler: Handler, n: int = 4, compression: str = "none") -> tuple[SendOutcome, BulkService]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        service = BulkService("es", client, "http://es.test:9200/", compression)
        batch = BulkEncoder("ecvi-logs-%Y.%m.%d").encode([make_event(i) for i in range(n)])
        return await service.send(batch), service


def _n_actions(request: httpx.Request) -> int:
    body = request.content
    if request.headers.get("content-encoding") == "gzip":
        body = gzip.decompress(body)
    return body.count(b"\n") // 2


@pytest.mark.anyio
async def test_request_shape() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=bulk_answer(*[CREATED] * _n_actions(request)))

    outcome, _ = await _send(handler)
    [req] = seen
    assert req.method == "POST" and req.url.path == "/_bulk"
    assert req.url.params["filter_path"] == "errors,items.*.status,items.*.error"
    assert req.headers["content-type"] == "application/x-ndjson"
    assert outcome.sent_bytes == len(req.content) and outcome.retry == []


@pytest.mark.anyio
async def test_gzip_compression() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=bulk_answer(*[CREATED] * _n_actions(request)))

    await _send(handler, compression="gzip")
    assert seen[0].headers["content-encoding"] == "gzip"
    assert gzip.decompress(seen[0].content).startswith(b'{"create":')


@pytest.mark.anyio
@pytest.mark.parametrize("status", [429, 500, 502, 503])
async def test_throttled_or_failing_cluster_is_transient_with_retry_after(status: int) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers={"Retry-After": "7"}, json={
            "error": {"type": "es_rejected_execution_exception", "reason": "queue full"}, "status": status})

    with pytest.raises(TransientSinkError) as info:
        await _send(handler)
    assert info.value.retry_after == 7.0
    assert "es_rejected_execution_exception: queue full" in info.value.reason


@pytest.mark.anyio
@pytest.mark.parametrize("status", [401, 403])
async def test_auth_failures_are_permanent(status: int) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"error": {
            "type": "security_exception", "reason": "unable to authenticate with provided credentials"}})

    with pytest.raises(PermanentSinkError) as info:
        await _send(handler)
    assert f"HTTP {status}: security_exception" in info.value.reason
    assert "ApiKey" not in info.value.reason


def _at_most_two(sizes: list[int], answers: dict[int, httpx.Response] | None = None) -> Handler:
    """A cluster that refuses a bulk of more than two documents (413); ``answers`` by request number."""

    def handler(request: httpx.Request) -> httpx.Response:
        n = _n_actions(request)
        sizes.append(n)
        if n > 2:
            return httpx.Response(413, text="")
        return (answers or {}).get(len(sizes)) or httpx.Response(200, content=bulk_answer(*[CREATED] * n))

    return handler


@pytest.mark.anyio
async def test_too_large_request_is_halved_until_it_fits() -> None:
    sizes: list[int] = []
    outcome, _ = await _send(_at_most_two(sizes), n=7)
    assert sizes == [7, 3, 1, 2, 4, 2, 2]
    assert outcome.retry == [] and outcome.rejected == []


@pytest.mark.anyio
async def test_single_document_too_large_is_rejected() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(413, text="")

    outcome, _ = await _send(handler, n=2)
    assert len(outcome.rejected) == 2
    assert all(r.startswith("request_entity_too_large:") for _, r in outcome.rejected)


@pytest.mark.anyio
async def test_duplicates_are_counted_across_requests() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=bulk_answer(CONFLICT, CONFLICT, CREATED, CREATED))

    _, service = await _send(handler)
    assert service.duplicates == 2


@pytest.mark.anyio
async def test_other_client_errors_are_permanent() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": {"type": "illegal_argument_exception",
                                                   "reason": "Malformed action/metadata line [1]"}})

    with pytest.raises(PermanentSinkError, match="Malformed action"):
        await _send(handler)


@pytest.mark.anyio
async def test_a_half_failing_as_a_whole_costs_only_its_own_documents() -> None:
    """After a 413, a half the cluster throttles is retried alone; the half it stored stays stored."""
    sizes: list[int] = []
    throttled = httpx.Response(429, headers={"Retry-After": "3"}, json={
        "error": {"type": "es_rejected_execution_exception", "reason": "queue full"}, "status": 429})
    outcome, _ = await _send(_at_most_two(sizes, {3: throttled}), n=4)
    assert sizes == [4, 2, 2]
    assert [e.id for e in outcome.retry] == [make_event(i).id for i in (2, 3)]
    assert outcome.rejected == [] and outcome.retry_after == 3.0
    assert "es_rejected_execution_exception: queue full" in outcome.reason
