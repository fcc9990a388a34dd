"""Log group and stream names built from event fields: valid for AWS whatever a line says, and bounded."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber
from hypothesis import given, settings
from hypothesis import strategies as st

from shipper.event import Event
from shipper.metrics import REGISTRY
from shipper.sinks.cloudwatch.sink import CloudWatchSink
from tests.factories import event
from tests.shipper.sinks.cloudwatch._support import NOW, NOW_MS, make_config, put_params

HOSTILE = ["a b:c", "aws/lambda", "AWS/x", "", "é", "\ud800", "x" * 600, "*", "..", "/", "a\nb", "#:*?"]
_GROUP = re.compile(r"[.\-_/#A-Za-z0-9]{1,512}")


def valid_group(name: str) -> bool:
    """CreateLogGroup: 1-512 characters of a-z A-Z 0-9 _ - / . #, not starting with aws/."""
    return bool(_GROUP.fullmatch(name)) and not name.startswith("aws/")


def valid_stream(name: str) -> bool:
    """CreateLogStream: 1-512 characters, no ':' or '*' (and, as for any request, valid UTF-8)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return 1 <= len(name) <= 512 and ":" not in name and "*" not in name


def _sink(tmp_path: Path, client: Any = None, **cfg: Any) -> CloudWatchSink:
    return CloudWatchSink(cfg.pop("name", "cw-names"), make_config(**cfg), str(tmp_path), client=client,
                          clock=lambda: NOW)


def _event(value: Any, pod: str = "web-0", n: int = 0) -> Event:
    return event({"service": value, "n": n}, raw=f"line {n}", ts_ns=(NOW_MS - 1000 + n) * 1_000_000,
                 meta={"source": "app", "kubernetes": {"namespace": "shop", "pod_name": pod}})


def _overflow_count(sink: str) -> float:
    return REGISTRY.get_sample_value("ecvi_shipper_index_overflow_total", {"sink": sink}) or 0.0


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_make_valid_names(tmp_path: Path, value: str) -> None:
    group, stream = _sink(tmp_path, group="{{ service }}", stream="{{ service }}").destination(_event(value))
    assert valid_group(group) and valid_stream(stream), (group, stream)
    group, stream = _sink(tmp_path, group="/ecvi/{{ service }}", stream="app-{{ service }}").destination(_event(value))
    assert valid_group(group) and valid_stream(stream), (group, stream)
    assert group.startswith("/ecvi/") and stream.startswith("app-")


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(exclude_categories=()), max_size=700) | st.text(max_size=9).map("aws/".__add__)
       | st.integers() | st.none())
def test_any_value_makes_valid_names(value: Any) -> None:
    sink = _sink(Path("/nonexistent"), group="{{ service }}", stream="{{ service }}")
    group, stream = sink.destination(_event(value))
    assert valid_group(group) and valid_stream(stream), (value, group, stream)


def test_a_reserved_literal_group_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="aws/"):
        make_config(group="aws/{{ service }}")


def test_distinct_streams_are_bounded_with_an_overflow_stream(tmp_path: Path) -> None:
    sink = _sink(tmp_path, name="cw-many", max_streams=100)
    dests = {sink.destination(_event("x", pod=f"pod-{i}")) for i in range(5000)}
    assert len(dests) == 100 + 1 and ("/ecvi/test", "__overflow__") in dests
    assert sink.names.overflowed == _overflow_count("cw-many") == 4900


def test_one_pod_cannot_spend_the_other_pods_streams(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sink = _sink(tmp_path, name="cw-pod", stream="{{ kubernetes.pod_name }}-{{ service }}", max_streams_per_pod=5)
    noisy = {sink.destination(_event(f"junk-{i}", pod="noisy")) for i in range(1000)}
    assert len(noisy) == 5 + 1 and ("/ecvi/test", "__overflow__-__overflow__") in noisy
    assert sink.destination(_event("api", pod="quiet")) == ("/ecvi/test", "quiet-api")
    assert _overflow_count("cw-pod") == 995
    assert caplog.text.count("not created") == 1 and "pod shop/noisy" in caplog.text


def test_distinct_groups_are_bounded_with_an_overflow_group(tmp_path: Path) -> None:
    sink = _sink(tmp_path, name="cw-groups", group="/ecvi/{{ service }}", max_groups=3)
    groups = {sink.destination(_event(f"svc-{i}", pod=f"pod-{i}"))[0] for i in range(50)}
    assert groups == {"/ecvi/svc-0", "/ecvi/svc-1", "/ecvi/svc-2", "/ecvi/__overflow__"}
    assert _overflow_count("cw-groups") == 47


@pytest.mark.anyio
async def test_overflowed_events_are_sent_to_the_overflow_stream(tmp_path: Path, stub: Stubber,
                                                                logs_client: Any) -> None:
    sink = _sink(tmp_path, logs_client, name="cw-send", max_streams=1)
    a, b, c = _event("x", pod="pod-a", n=0), _event("x", pod="pod-b", n=1), _event("x", pod="pod-c", n=2)
    stub.add_response("put_log_events", {}, put_params("/ecvi/test", "pod-a", [a]))
    stub.add_response("put_log_events", {}, put_params("/ecvi/test", "__overflow__", [b, c]))
    outcome = await sink.send([a, b, c])
    assert (outcome.retry, outcome.rejected) == ([], [])


def test_sink_builds_its_budget_from_the_options(tmp_path: Path) -> None:
    sink = _sink(tmp_path, group="/g/{{ service }}", max_groups=7, max_groups_per_pod=2, max_streams=9,
                 max_streams_per_pod=4)
    assert sink.names.groups is not None and sink.names.streams is not None
    assert (sink.names.groups.max_names, sink.names.groups.max_per_tenant) == (7, 2)
    assert (sink.names.streams.max_names, sink.names.streams.max_per_tenant) == (9, 4)
