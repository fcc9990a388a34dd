"""Reading AWS's errors, and creating groups (with retention) and streams."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)
from botocore.stub import Stubber

from shipper.sinks.cloudwatch.limits import to_log_event
from shipper.sinks.cloudwatch.service import ErrorKind, LogsService, classify_error
from tests.shipper.sinks.cloudwatch._support import make_event


def client_error(code: str, status: int = 400, message: str = "boom") -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": message},
                     "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "PutLogEvents")


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (client_error("ThrottlingException"), ErrorKind.RETRY),
        (client_error("LimitExceededException"), ErrorKind.RETRY),
        (client_error("ServiceUnavailableException", 503), ErrorKind.RETRY),
        (client_error("InternalFailure", 500), ErrorKind.RETRY),
        (client_error("SomethingNew", 502), ErrorKind.RETRY),
        (client_error("", 504), ErrorKind.RETRY),
        (client_error("InvalidSequenceTokenException"), ErrorKind.RETRY),
        (client_error("ExpiredTokenException"), ErrorKind.RETRY),
        (client_error("AccessDeniedException"), ErrorKind.DENIED),
        (client_error("UnrecognizedClientException"), ErrorKind.DENIED),
        (client_error("InvalidSignatureException", 403), ErrorKind.DENIED),
        (client_error("InvalidParameterException"), ErrorKind.REJECT),
        (client_error("SomeOtherClientFault"), ErrorKind.REJECT),
        (client_error("ResourceNotFoundException"), ErrorKind.MISSING),
        (client_error("DataAlreadyAcceptedException"), ErrorKind.ACCEPTED),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), ErrorKind.RETRY),
        (ConnectionClosedError(endpoint_url="http://127.0.0.1:9"), ErrorKind.RETRY),
        (ReadTimeoutError(endpoint_url="http://127.0.0.1:9"), ErrorKind.RETRY),
        (NoCredentialsError(), ErrorKind.RETRY),
        (ParamValidationError(report="logEvents[0].message: too short"), ErrorKind.REJECT),
    ],
)
def test_classify_error(exc: Exception, kind: ErrorKind) -> None:
    verdict = classify_error(exc)
    assert verdict is not None
    assert verdict.kind is kind
    assert verdict.reason


def test_classify_error_reasons_name_the_problem() -> None:
    throttled = classify_error(client_error("ThrottlingException", message="Rate exceeded"))
    assert throttled is not None
    assert throttled.reason == "ThrottlingException: Rate exceeded"
    assert throttled.retry_after == 1.0
    denied = classify_error(client_error("UnrecognizedClientException", message="The token is invalid"))
    assert denied is not None
    assert denied.reason.startswith("access_denied:")
    assert "The token is invalid" in denied.reason and "logs:PutLogEvents" in denied.reason
    invalid = classify_error(client_error("InvalidParameterException", message="bad name"))
    assert invalid is not None and invalid.reason == "invalid_parameter: InvalidParameterException: bad name"
    offline = classify_error(EndpointConnectionError(endpoint_url="http://127.0.0.1:9"))
    assert offline is not None and "http://127.0.0.1:9" in offline.reason
    assert classify_error(ValueError("a bug")) is None


async def _create(stub: Stubber, client: Any, retention: int | None = 30) -> None:
    await LogsService(client, retention_days=retention).create_stream("/ecvi/g", "pod-a")


@pytest.mark.anyio
async def test_new_group_is_created_with_retention(stub: Stubber, logs_client: Any) -> None:
    stream = {"logGroupName": "/ecvi/g", "logStreamName": "pod-a"}
    stub.add_client_error("create_log_stream", "ResourceNotFoundException", expected_params=stream)
    stub.add_response("create_log_group", {}, {"logGroupName": "/ecvi/g"})
    stub.add_response("put_retention_policy", {}, {"logGroupName": "/ecvi/g", "retentionInDays": 30})
    stub.add_response("create_log_stream", {}, stream)
    await _create(stub, logs_client)


@pytest.mark.anyio
async def test_existing_group_only_gets_the_stream(stub: Stubber, logs_client: Any) -> None:
    stub.add_response("create_log_stream", {}, {"logGroupName": "/ecvi/g", "logStreamName": "pod-a"})
    await _create(stub, logs_client)


@pytest.mark.anyio
async def test_stream_created_meanwhile_is_fine(stub: Stubber, logs_client: Any) -> None:
    stub.add_client_error("create_log_stream", "ResourceAlreadyExistsException")
    await _create(stub, logs_client)


@pytest.mark.anyio
async def test_group_created_by_someone_else_keeps_its_retention(stub: Stubber, logs_client: Any) -> None:
    stub.add_client_error("create_log_stream", "ResourceNotFoundException")
    stub.add_client_error("create_log_group", "ResourceAlreadyExistsException")
    stub.add_response("create_log_stream", {})
    await _create(stub, logs_client)


@pytest.mark.anyio
async def test_no_retention_when_unset(stub: Stubber, logs_client: Any) -> None:
    stub.add_client_error("create_log_stream", "ResourceNotFoundException")
    stub.add_response("create_log_group", {})
    stub.add_response("create_log_stream", {})
    await _create(stub, logs_client, retention=None)


@pytest.mark.anyio
async def test_retention_refused_is_logged_not_fatal(
    stub: Stubber, logs_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    stub.add_client_error("create_log_stream", "ResourceNotFoundException")
    stub.add_response("create_log_group", {})
    stub.add_client_error("put_retention_policy", "AccessDeniedException", "not allowed")
    stub.add_response("create_log_stream", {})
    with caplog.at_level(logging.ERROR):
        await _create(stub, logs_client)
    assert "could not set retention of 30 days on log group /ecvi/g" in caplog.text


@pytest.mark.anyio
async def test_retention_throttled_is_set_on_the_next_attempt(stub: Stubber, logs_client: Any) -> None:
    service = LogsService(logs_client, retention_days=7)
    stub.add_client_error("create_log_stream", "ResourceNotFoundException")
    stub.add_response("create_log_group", {})
    stub.add_client_error("put_retention_policy", "ThrottlingException")
    with pytest.raises(ClientError):
        await service.create_stream("/ecvi/g", "pod-a")
    stub.add_response("put_retention_policy", {}, {"logGroupName": "/ecvi/g", "retentionInDays": 7})
    stub.add_response("create_log_stream", {})
    await service.create_stream("/ecvi/g", "pod-a")


@pytest.mark.anyio
async def test_put_returns_rejected_info(stub: Stubber, logs_client: Any) -> None:
    events = [to_log_event(make_event(i)) for i in range(3)]
    info = {"tooOldLogEventEndIndex": 1}
    stub.add_response(
        "put_log_events", {"nextSequenceToken": "1", "rejectedLogEventsInfo": info},
        {"logGroupName": "g", "logStreamName": "s", "logEvents": [e.to_api() for e in events]},
    )
    got = await LogsService(logs_client, retention_days=None).put("g", "s", events)
    assert got == info


@pytest.mark.anyio
async def test_put_answers_a_legacy_sequence_token_request_once(stub: Stubber, logs_client: Any) -> None:
    events = [to_log_event(make_event(0))]
    params = {"logGroupName": "g", "logStreamName": "s", "logEvents": [e.to_api() for e in events]}
    stub.add_client_error("put_log_events", "InvalidSequenceTokenException",
                          modeled_fields={"expectedSequenceToken": "49"}, expected_params=params)
    stub.add_response("put_log_events", {}, {**params, "sequenceToken": "49"})
    assert await LogsService(logs_client, retention_days=None).put("g", "s", events) == {}
