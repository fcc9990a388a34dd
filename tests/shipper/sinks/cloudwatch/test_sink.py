"""CloudWatchSink.send against scripted AWS answers (botocore Stubber): what is sent, what comes back."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber

from shipper.buffer import DiskBuffer
from shipper.event import Event
from shipper.sinks._common.driver import SinkDriver
from shipper.sinks._common.outcome import PermanentSinkError, SendOutcome, TransientSinkError
from shipper.sinks.cloudwatch.limits import MAX_AGE_MS, MAX_AHEAD_MS, TRUNCATION_MARKER
from shipper.sinks.cloudwatch.service import LogsService
from shipper.sinks.cloudwatch.sink import CloudWatchSink
from tests.shipper.sinks.cloudwatch._support import NOW, NOW_MS, make_config, make_event, put_params

GROUP = "/ecvi/test"


SinkFactory = Callable[..., CloudWatchSink]


@pytest.fixture
def make_sink(logs_client: Any, tmp_path: Path) -> SinkFactory:
    """A sink on the stubbed client, its clock at NOW; keyword arguments are config options."""

    def make(**cfg: Any) -> CloudWatchSink:
        return CloudWatchSink("cw", make_config(**cfg), str(tmp_path), client=logs_client, clock=lambda: NOW)

    return make


async def _send(sink: CloudWatchSink, events: list[Event]) -> SendOutcome:
    return await sink.send(events)


def _ns(events: list[Event]) -> list[int]:
    return [e.record["n"] for e in events]


@pytest.mark.anyio
async def test_events_partitioned_per_stream_and_sorted(stub: Stubber, make_sink: SinkFactory) -> None:
    a = [make_event(n, "pod-a", NOW_MS - ago) for n, ago in ((0, 10), (1, 30), (2, 20))]
    b = [make_event(3, "pod-b", NOW_MS - 5), make_event(4, "pod-b", NOW_MS - 50)]
    stub.add_response("put_log_events", {}, put_params(GROUP, "pod-a", [a[1], a[2], a[0]]))
    stub.add_response("put_log_events", {}, put_params(GROUP, "pod-b", [b[1], b[0]]))
    outcome = await _send(make_sink(), [a[0], b[0], a[1], a[2], b[1]])
    assert (outcome.retry, outcome.rejected) == ([], [])
    assert outcome.sent_bytes == 5 * (6 + 26)


@pytest.mark.anyio
async def test_templates_render_group_and_stream_with_fallback(stub: Stubber, make_sink: SinkFactory) -> None:
    with_service = Event({"service": "api:v2"}, "x", (NOW_MS - 1) * 1_000_000, {})
    stub.add_response("put_log_events", {}, put_params("/ecvi/api_v2", "unknown", [with_service]))
    sink = make_sink(group="/ecvi/{{ service }}")
    assert sink.destination(with_service) == ("/ecvi/api_v2", "unknown")
    assert sink.destination(make_event(0, pod=None)) == ("/ecvi/unknown", "unknown")
    assert (await _send(sink, [with_service])).rejected == []


@pytest.mark.anyio
async def test_events_aws_would_refuse_are_rejected_not_sent(stub: Stubber, make_sink: SinkFactory) -> None:
    old = make_event(0, ts_ms=NOW_MS - MAX_AGE_MS - 1)
    new = make_event(1, ts_ms=NOW_MS + MAX_AHEAD_MS + 1)
    empty = make_event(2, raw="")
    fine = make_event(3)
    stub.add_response("put_log_events", {}, put_params(GROUP, "pod-a", [fine]))
    outcome = await _send(make_sink(), [old, new, empty, fine])
    reasons = {e.record["n"]: r.split(":")[0] for e, r in outcome.rejected}
    assert reasons == {0: "too_old", 1: "too_new", 2: "empty_message"}
    assert outcome.retry == []


@pytest.mark.anyio
async def test_oversize_event_truncated_and_flagged(stub: Stubber, make_sink: SinkFactory) -> None:
    big = make_event(0, raw="z" * 300_000)
    expected = "z" * (262_118 - len(TRUNCATION_MARKER.encode())) + TRUNCATION_MARKER
    stub.add_response("put_log_events", {}, {
        "logGroupName": GROUP, "logStreamName": "pod-a",
        "logEvents": [{"timestamp": big.ts_ns // 1_000_000, "message": expected}],
    })
    sink = make_sink(max_event_bytes=262_144)
    outcome = await _send(sink, [big])
    assert outcome.rejected == [] and outcome.sent_bytes == 262_144
    assert big.meta["truncated"] is True
    assert sink.truncated_events == 1


@pytest.mark.anyio
async def test_rejected_log_events_info_goes_to_rejected(stub: Stubber, make_sink: SinkFactory) -> None:
    events = [make_event(i) for i in range(5)]
    stub.add_response(
        "put_log_events",
        {"rejectedLogEventsInfo": {"tooOldLogEventEndIndex": 1, "tooNewLogEventStartIndex": 4}},
        put_params(GROUP, "pod-a", events),
    )
    outcome = await _send(make_sink(), events)
    assert [(e.record["n"], r.split(":")[0]) for e, r in outcome.rejected] == [(0, "too_old"), (4, "too_new")]
    assert outcome.retry == []
    assert outcome.sent_bytes == 3 * (6 + 26)


@pytest.mark.anyio
async def test_missing_stream_and_group_created_then_sent(stub: Stubber, make_sink: SinkFactory) -> None:
    events = [make_event(0), make_event(1)]
    stub.add_client_error("put_log_events", "ResourceNotFoundException", "The log group does not exist.",
                          expected_params=put_params(GROUP, "pod-a", events))
    stub.add_client_error("create_log_stream", "ResourceNotFoundException")
    stub.add_response("create_log_group", {}, {"logGroupName": GROUP})
    stub.add_response("put_retention_policy", {}, {"logGroupName": GROUP, "retentionInDays": 14})
    stub.add_response("create_log_stream", {}, {"logGroupName": GROUP, "logStreamName": "pod-a"})
    stub.add_response("put_log_events", {}, put_params(GROUP, "pod-a", events))
    outcome = await _send(make_sink(retention_days=14), events)
    assert (outcome.retry, outcome.rejected) == ([], [])


@pytest.mark.anyio
async def test_stream_still_missing_after_creating_it_is_retried(stub: Stubber, make_sink: SinkFactory) -> None:
    stub.add_client_error("put_log_events", "ResourceNotFoundException")
    stub.add_response("create_log_stream", {})
    stub.add_client_error("put_log_events", "ResourceNotFoundException")
    with pytest.raises(TransientSinkError, match="just after creating it"):
        await _send(make_sink(), [make_event(0)])


@pytest.mark.anyio
async def test_missing_stream_without_create_missing_is_rejected(stub: Stubber, make_sink: SinkFactory) -> None:
    stub.add_client_error("put_log_events", "ResourceNotFoundException", "The log stream does not exist.")
    outcome = await _send(make_sink(create_missing=False), [make_event(0)])
    [(_event, reason)] = outcome.rejected
    assert reason.startswith("not_found: The log stream does not exist. (create_missing is off)")


@pytest.mark.anyio
async def test_throttled_send_raises_transient_with_a_floor(stub: Stubber, make_sink: SinkFactory) -> None:
    stub.add_client_error("put_log_events", "ThrottlingException", "Rate exceeded")
    with pytest.raises(TransientSinkError) as err:
        await _send(make_sink(), [make_event(0)])
    assert err.value.reason == "ThrottlingException: Rate exceeded"
    assert err.value.retry_after == 1.0


def _three_streams() -> tuple[list[Event], list[Event], list[Event]]:
    return ([make_event(i, "pod-a") for i in range(0, 3)], [make_event(i, "pod-b") for i in range(3, 6)],
            [make_event(i, "pod-c") for i in range(6, 9)])


@pytest.mark.anyio
async def test_failed_call_retries_only_itself_and_unsent_calls(stub: Stubber, make_sink: SinkFactory) -> None:
    a, b, c = _three_streams()
    stub.add_response("put_log_events", {}, put_params(GROUP, "pod-a", a))
    stub.add_client_error("put_log_events", "ServiceUnavailableException", "try later", 503,
                          expected_params=put_params(GROUP, "pod-b", b))
    outcome = await _send(make_sink(), a + b + c)
    assert _ns(outcome.retry) == _ns(b + c)
    assert outcome.rejected == []
    assert outcome.reason == "ServiceUnavailableException: try later"
    assert outcome.sent_bytes == 3 * (6 + 26)


@pytest.mark.anyio
async def test_access_denied_is_permanent(stub: Stubber, make_sink: SinkFactory) -> None:
    stub.add_client_error("put_log_events", "UnrecognizedClientException", "The security token is invalid.")
    with pytest.raises(PermanentSinkError, match="access_denied: AWS refused the credentials"):
        await _send(make_sink(), [make_event(0)])


@pytest.mark.anyio
async def test_access_denied_after_an_accepted_call_spares_it(stub: Stubber, make_sink: SinkFactory) -> None:
    a, b, c = _three_streams()
    stub.add_response("put_log_events", {})
    stub.add_client_error("put_log_events", "AccessDeniedException", "no", 403)
    outcome = await _send(make_sink(), a + b + c)
    assert _ns([e for e, _ in outcome.rejected]) == _ns(b + c)
    assert outcome.retry == []


@pytest.mark.anyio
async def test_invalid_parameter_rejects_that_call_only(stub: Stubber, make_sink: SinkFactory) -> None:
    a, b, _ = _three_streams()
    stub.add_client_error("put_log_events", "InvalidParameterException", "bad stream")
    stub.add_response("put_log_events", {}, put_params(GROUP, "pod-b", b))
    outcome = await _send(make_sink(), a + b)
    assert _ns([e for e, _ in outcome.rejected]) == _ns(a)
    reason = outcome.rejected[0][1]
    assert reason == "invalid_parameter: InvalidParameterException: bad stream (/ecvi/test / pod-a)"
    assert outcome.retry == []


@pytest.mark.anyio
async def test_data_already_accepted_counts_as_sent(stub: Stubber, make_sink: SinkFactory) -> None:
    stub.add_client_error("put_log_events", "DataAlreadyAcceptedException")
    outcome = await _send(make_sink(), [make_event(0)])
    assert (outcome.retry, outcome.rejected) == ([], [])


@pytest.mark.anyio
async def test_unexpected_error_after_an_accepted_call_keeps_it(
    monkeypatch: pytest.MonkeyPatch, make_sink: SinkFactory
) -> None:
    calls: list[str] = []

    async def put(self: LogsService, group: str, stream: str, events: list[Any]) -> dict[str, int]:
        calls.append(stream)
        if len(calls) > 1:
            raise RuntimeError("a bug")
        return {}

    monkeypatch.setattr(LogsService, "put", put)
    a, b, c = _three_streams()
    sink = make_sink()
    outcome = await _send(sink, a + b + c)
    assert _ns(outcome.retry) == _ns(b + c)
    assert outcome.reason == "unexpected RuntimeError: a bug"
    with pytest.raises(RuntimeError):  # first call: the driver's bounded handling sees it
        await _send(sink, b + c)


@pytest.mark.anyio
async def test_driver_retries_throttled_call_without_resending_accepted_one(
    stub: Stubber, make_sink: SinkFactory, tmp_path: Path
) -> None:
    a, b, _ = _three_streams()
    stub.add_response("put_log_events", {}, put_params(GROUP, "pod-a", a))
    stub.add_client_error("put_log_events", "ThrottlingException", "Rate exceeded",
                          expected_params=put_params(GROUP, "pod-b", b))
    stub.add_response("put_log_events", {}, put_params(GROUP, "pod-b", b))
    retry = {"initial_backoff_secs": 0.01, "max_backoff_secs": 0.05}
    sink = make_sink(batch={"max_events": 100, "timeout_secs": 0.05},
                     request={"concurrency": 1, "retry": retry})

    buf = DiskBuffer(tmp_path / "buf", "cw")
    driver = SinkDriver(sink, buf, sink.config, str(tmp_path))
    await driver.start()
    await buf.append(a + b)
    for _ in range(300):
        if buf.pending_events == 0:
            break
        await asyncio.sleep(0.01)
    await driver.stop(1)
    assert buf.pending_events == 0
    assert not (tmp_path / "dead_letter" / "cw.ndjson").exists()


def test_event_size_matches_aws_accounting(make_sink: SinkFactory) -> None:
    sink = make_sink()
    assert sink.event_size(make_event(0, raw="héllo")) == 6 + 26


@pytest.mark.anyio
async def test_healthcheck_describes_groups_under_the_template_prefix(
    stub: Stubber, make_sink: SinkFactory
) -> None:
    stub.add_response("describe_log_groups", {"logGroups": []}, {"logGroupNamePrefix": "/ecvi/", "limit": 1})
    await make_sink(group="/ecvi/{{ service }}").healthcheck()


@pytest.mark.anyio
async def test_healthcheck_reports_refused_credentials(stub: Stubber, make_sink: SinkFactory) -> None:
    stub.add_client_error("describe_log_groups", "UnrecognizedClientException", "The token is invalid.")
    with pytest.raises(PermanentSinkError) as err:
        await make_sink().healthcheck()
    assert "DescribeLogGroups on CloudWatch Logs at http://127.0.0.1:9 (region us-east-1" in str(err.value)
    assert "The token is invalid." in str(err.value)


def _offline_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, credentials: bool) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                "AWS_ENDPOINT_URL", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    if credentials:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


@pytest.mark.anyio
async def test_healthcheck_reports_an_unreachable_endpoint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _offline_env(monkeypatch, tmp_path, credentials=True)
    sink = CloudWatchSink("cw", make_config(endpoint="http://127.0.0.1:1"), str(tmp_path))
    with pytest.raises(TransientSinkError) as err:
        await sink.healthcheck()
    assert "connection: Could not connect to the endpoint URL" in str(err.value)
    assert "http://127.0.0.1:1" in str(err.value)
    await sink.close()


@pytest.mark.anyio
async def test_healthcheck_reports_missing_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _offline_env(monkeypatch, tmp_path, credentials=False)
    sink = CloudWatchSink("cw", make_config(endpoint="http://127.0.0.1:1"), str(tmp_path))
    with pytest.raises(TransientSinkError, match="no_credentials: Unable to locate credentials"):
        await sink.healthcheck()


@pytest.mark.anyio
async def test_unknown_profile_stops_start(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _offline_env(monkeypatch, tmp_path, credentials=False)
    sink = CloudWatchSink("cw", make_config(profile="nope"), str(tmp_path))
    with pytest.raises(PermanentSinkError, match="AWS profile 'nope' not found"):
        await sink.start()
