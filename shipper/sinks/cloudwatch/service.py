"""PutLogEvents and the calls around it (create group/stream, retention), and how to read AWS's errors.

boto3 is synchronous, so every call runs in a thread; one client per sink (boto3 clients are
thread-safe). botocore does not retry: the shared delivery does, with backoff and jitter.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    CredentialRetrievalError,
    HTTPClientError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
)

from shipper.sinks.cloudwatch.config import CloudWatchSinkConfig
from shipper.sinks.cloudwatch.limits import LogEvent

if TYPE_CHECKING:
    from mypy_boto3_logs import CloudWatchLogsClient

log = logging.getLogger("shipper.sinks.cloudwatch")

_RETRY_CODES = frozenset({
    "ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded",
    "LimitExceededException", "ServiceUnavailableException", "ServiceUnavailable", "InternalFailure",
    "InternalServerError", "InternalServerException", "RequestTimeout", "RequestTimeoutException",
    "OperationAbortedException", "ExpiredTokenException", "ExpiredToken", "RequestExpired",
    # Sequence tokens are ignored by AWS now and never sent here; an endpoint still asking for one
    # gets the call again (LogsService.put first retries once with the token it expects).
    "InvalidSequenceTokenException",
})
_THROTTLE_CODES = frozenset({
    "ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded",
    "LimitExceededException",
})
_DENIED_CODES = frozenset({
    "AccessDeniedException", "AccessDenied", "UnrecognizedClientException", "InvalidClientTokenId",
    "InvalidSignatureException", "SignatureDoesNotMatch", "IncompleteSignature",
    "MissingAuthenticationToken", "MissingAuthenticationTokenException", "NotAuthorized", "AuthFailure",
})
# PutLogEvents quotas are per second and account: retrying sooner than that is wasted.
_THROTTLE_RETRY_AFTER = 1.0


class ErrorKind(enum.Enum):
    """What an AWS error means for the events of the call that got it."""

    RETRY = "retry"  # throttling, 5xx, network, credentials not available yet: send again later
    REJECT = "reject"  # these events can never be stored as sent: dead-letter them
    DENIED = "denied"  # credentials or permissions refused: nothing this sink sends can succeed
    MISSING = "missing"  # the log group or stream does not exist
    ACCEPTED = "accepted"  # DataAlreadyAcceptedException: the batch is already stored


@dataclass(frozen=True, slots=True)
class ErrorVerdict:
    kind: ErrorKind
    reason: str
    retry_after: float | None = None


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def classify_error(exc: BaseException) -> ErrorVerdict | None:
    """Read a botocore exception; None when it is not one this module knows (a bug, not AWS)."""
    if isinstance(exc, ClientError):
        code = error_code(exc)
        message = exc.response.get("Error", {}).get("Message", "") or str(exc)
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        detail = f"{code}: {message}" if code else message
        if code == "ResourceNotFoundException":
            return ErrorVerdict(ErrorKind.MISSING, f"not_found: {message}")
        if code == "DataAlreadyAcceptedException":
            return ErrorVerdict(ErrorKind.ACCEPTED, detail)
        if code in _DENIED_CODES:
            return ErrorVerdict(
                ErrorKind.DENIED,
                f"access_denied: AWS refused the credentials or permissions ({detail}); check the profile, "
                "AWS_* environment or role, and that the IAM policy allows logs:CreateLogGroup, "
                "logs:CreateLogStream, logs:PutRetentionPolicy, logs:PutLogEvents, logs:DescribeLogGroups",
            )
        if code in _RETRY_CODES or status >= 500 or status == 429:
            after = _THROTTLE_RETRY_AFTER if code in _THROTTLE_CODES or status == 429 else None
            return ErrorVerdict(ErrorKind.RETRY, detail or f"HTTP {status}", after)
        # InvalidParameterException and every other 4xx: the request itself is wrong.
        return ErrorVerdict(ErrorKind.REJECT, f"invalid_parameter: {detail}")
    if isinstance(exc, ParamValidationError):
        return ErrorVerdict(ErrorKind.REJECT, f"invalid_parameter: {exc}")
    if isinstance(exc, NoCredentialsError | PartialCredentialsError | CredentialRetrievalError):
        return ErrorVerdict(
            ErrorKind.RETRY,
            f"no_credentials: {exc} (set `profile`, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or a role)",
        )
    if isinstance(exc, ConnectionError | HTTPClientError):
        return ErrorVerdict(ErrorKind.RETRY, f"connection: {exc}")
    if isinstance(exc, BotoCoreError):
        return ErrorVerdict(ErrorKind.RETRY, f"{type(exc).__name__}: {exc}")
    return None


def build_client(config: CloudWatchSinkConfig) -> CloudWatchLogsClient:
    """A CloudWatch Logs client from the standard credential chain (or ``profile``), without retries."""
    session = boto3.session.Session(profile_name=config.profile, region_name=config.region)
    timeout = config.request.timeout_secs
    return session.client(
        "logs",
        endpoint_url=config.endpoint,
        config=Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=timeout,
            read_timeout=timeout,
            max_pool_connections=max(10, 2 * config.request.concurrency),
            user_agent_extra="ecvi-logs",
        ),
    )


class LogsService:
    """The CloudWatch Logs calls of one sink.

    Streams are not looked up or created before a put: the put itself says when one is missing
    (ResourceNotFoundException), which costs nothing for the streams that exist.
    """

    def __init__(self, client: CloudWatchLogsClient, *, retention_days: int | None) -> None:
        self.client = client
        self.retention_days = retention_days
        self._retention_pending: set[str] = set()

    async def _call(self, fn: Callable[..., Any], **params: Any) -> Any:
        return await asyncio.to_thread(fn, **params)

    async def put(self, group: str, stream: str, events: list[LogEvent]) -> dict[str, int]:
        """One PutLogEvents; returns its ``rejectedLogEventsInfo`` (empty when all were stored)."""
        params: dict[str, Any] = {
            "logGroupName": group,
            "logStreamName": stream,
            "logEvents": [e.to_api() for e in events],
        }
        try:
            response = await self._call(self.client.put_log_events, **params)
        except ClientError as exc:
            token = exc.response.get("expectedSequenceToken")
            if error_code(exc) != "InvalidSequenceTokenException" or not token:
                raise
            response = await self._call(self.client.put_log_events, **params, sequenceToken=token)
        return dict(response.get("rejectedLogEventsInfo") or {})

    async def create_stream(self, group: str, stream: str) -> None:
        """Create the stream, and its group first if that is missing too (new groups get retention)."""
        if group in self._retention_pending:
            await self._set_retention(group)
        try:
            await self._create(self.client.create_log_stream, logGroupName=group, logStreamName=stream)
        except ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
            if await self._create(self.client.create_log_group, logGroupName=group):
                log.info("created log group %s", group)
                if self.retention_days is not None:
                    self._retention_pending.add(group)
                    await self._set_retention(group)
            await self._create(self.client.create_log_stream, logGroupName=group, logStreamName=stream)

    async def _create(self, fn: Callable[..., Any], **params: Any) -> bool:
        """Call a Create* API; False if the resource already existed."""
        try:
            await self._call(fn, **params)
        except ClientError as exc:
            if error_code(exc) == "ResourceAlreadyExistsException":
                return False
            raise
        return True

    async def _set_retention(self, group: str) -> None:
        """Retention on a group this sink created; a refusal is logged, not held against the events."""
        try:
            await self._call(
                self.client.put_retention_policy, logGroupName=group, retentionInDays=self.retention_days
            )
        except (ClientError, BotoCoreError) as exc:
            verdict = classify_error(exc)
            if verdict is None or verdict.kind is ErrorKind.RETRY:
                raise  # tried again with the events' next attempt
            log.error("could not set retention of %s days on log group %s: %s",
                      self.retention_days, group, verdict.reason)
        self._retention_pending.discard(group)

    async def describe_groups(self, prefix: str) -> None:
        """DescribeLogGroups (limit 1): proves endpoint, credentials and permission."""
        params: dict[str, Any] = {"limit": 1}
        if prefix:
            params["logGroupNamePrefix"] = prefix
        await self._call(self.client.describe_log_groups, **params)
