"""Label templates, escaping, missing values and the cardinality guard."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shipper.event import Event
from shipper.sinks.loki.labels import (
    MISSING_VALUE,
    OVERFLOW_VALUE,
    CardinalityGuard,
    LabelRenderer,
    escape_label_value,
    field_getter,
    format_labels,
)
from shipper.sinks.loki.rejections import parse_labels
from tests.factories import event


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _ev(record: dict[str, object], meta: dict[str, object] | None = None) -> Event:
    return event(record, raw="", meta=meta)


def _labels(renderer: LabelRenderer, event: Event) -> dict[str, str]:
    [stream] = renderer.group([event])
    return dict(stream.pairs)


def test_escaping() -> None:
    assert escape_label_value('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    assert escape_label_value("tab\there\x01\x7f") == "tab\\there\\x01\\x7f"
    assert escape_label_value("ünïcödé ☃") == "ünïcödé ☃"
    assert format_labels([("service", "api"), ("level", 'say "hi"')]) == '{level="say \\"hi\\"", service="api"}'


@given(st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True),
                       st.text(st.characters(blacklist_categories=["Cs"]), max_size=20), min_size=1))
def test_format_labels_round_trips_through_go_unquoting(pairs: dict[str, str]) -> None:
    assert parse_labels(format_labels(pairs.items())) == pairs


def test_templates_render_from_record_then_meta() -> None:
    r = LabelRenderer({"service": "{{ service }}", "ns": "{{ kubernetes.namespace }}", "env": "prod-{{ region }}"},
                      CardinalityGuard(10))
    got = _labels(r, _ev({"service": "api", "region": 3}, {"kubernetes": {"namespace": "backend"}}))
    assert got == {"service": "api", "ns": "backend", "env": "prod-3"}


def test_missing_and_empty_fields_render_as_unknown() -> None:
    r = LabelRenderer({"service": "{{ service }}", "level": "{{ level }}"}, CardinalityGuard(10))
    assert _labels(r, _ev({"level": ""})) == {"service": MISSING_VALUE, "level": MISSING_VALUE}


def test_render_cache_never_mixes_up_inputs() -> None:
    """The fast cache is keyed by record values: meta fallbacks and non-strings must not collide."""
    r = LabelRenderer({"service": "{{ service }}"}, CardinalityGuard(100))
    assert _labels(r, _ev({"service": "api"})) == {"service": "api"}
    assert _labels(r, _ev({}, {"service": "from-meta"})) == {"service": "from-meta"}
    assert _labels(r, _ev({}, {"service": "other-meta"})) == {"service": "other-meta"}
    assert _labels(r, _ev({"service": True})) == {"service": "True"}
    assert _labels(r, _ev({"service": 1})) == {"service": "1"}
    assert _labels(r, _ev({"service": {"nested": 1}})) == {"service": "{'nested': 1}"}
    assert _labels(r, _ev({"service": "api"})) == {"service": "api"}


def test_guard_overflows_past_the_limit_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    guard = CardinalityGuard(3)
    r = LabelRenderer({"service": "{{ service }}", "user": "{{ user_id }}"}, guard)
    with caplog.at_level(logging.WARNING, "shipper.sinks.loki"):
        users = [_labels(r, _ev({"service": "api", "user_id": f"u{i}"}))["user"] for i in range(6)]
        again = _labels(r, _ev({"service": "api", "user_id": "u1"}))["user"]
    assert users == ["u0", "u1", "u2", OVERFLOW_VALUE, OVERFLOW_VALUE, OVERFLOW_VALUE]
    assert again == "u1"  # admitted values stay admitted
    assert guard.overflowed == {"user": 3}
    warnings = [rec for rec in caplog.records if "distinct values" in rec.getMessage()]
    assert len(warnings) == 1 and "'user'" in warnings[0].getMessage()


def test_guard_window_resets_every_hour() -> None:
    clock = FakeClock()
    guard = CardinalityGuard(1, clock=clock)
    r = LabelRenderer({"pod": "{{ pod }}"}, guard)
    assert _labels(r, _ev({"pod": "a"}))["pod"] == "a"
    assert _labels(r, _ev({"pod": "b"}))["pod"] == OVERFLOW_VALUE
    clock.now += 3599
    assert _labels(r, _ev({"pod": "b"}))["pod"] == OVERFLOW_VALUE
    clock.now += 1
    assert _labels(r, _ev({"pod": "b"}))["pod"] == "b"  # a new hour: b is the one value
    assert _labels(r, _ev({"pod": "a"}))["pod"] == OVERFLOW_VALUE


def test_overflowed_events_share_one_stream() -> None:
    r = LabelRenderer({"req": "{{ request_id }}"}, CardinalityGuard(2))
    streams = r.group([_ev({"request_id": f"r{i}"}) for i in range(10)])
    assert [(s.labels, len(s.events)) for s in streams] == [
        ('{req="r0"}', 1), ('{req="r1"}', 1), ('{req="__overflow__"}', 8)]


def test_field_getter_answers_like_event_get() -> None:
    cases = [
        ({"a": 1}, {"a": 2}), ({"a": None}, {"a": 2}), ({}, {"a": 2}), ({}, {}),
        ({"k": {"ns": "x"}}, {"k": {"ns": "y"}}), ({"k": {"other": 1}}, {"k": {"ns": "y"}}),
        ({"k": {"ns": None}}, {"k": {"ns": "y"}}), ({"k": "flat"}, {"k": {"ns": "y"}}), ({}, {"k": 3}),
        ({"a": {"b": {"c": 1}}}, {}), ({"a": {"b": 2}}, {"a": {"b": {"c": 3}}}),
    ]
    for record, meta in cases:
        ev = Event(record, "", 0, meta)
        for path in ("a", "k.ns", "a.b.c"):
            assert field_getter(path)(record, meta) == ev.get(path), (path, record, meta)


def test_overflow_is_counted_in_the_metric() -> None:
    from shipper.metrics import REGISTRY
    from shipper.sinks.loki.labels import OVERFLOW_VALUE, CardinalityGuard

    guard = CardinalityGuard(2, sink="metric-test")
    admitted = [guard.admit("user", v) for v in ("a", "b", "c", "d", "a")]
    assert admitted == ["a", "b", OVERFLOW_VALUE, OVERFLOW_VALUE, "a"]
    labels = {"sink": "metric-test", "label": "user"}
    assert REGISTRY.get_sample_value("ecvi_shipper_label_overflow_total", labels) == 2


def _pod(name: str, **record: object) -> Event:
    return Event(dict(record), "", 0, {"source": "app", "kubernetes": {"namespace": "shop", "pod_name": name}})


def _overflow_events(sink: str) -> float:
    from shipper.metrics import REGISTRY

    return REGISTRY.get_sample_value("ecvi_shipper_index_overflow_total", {"sink": sink}) or 0.0


def test_label_combinations_of_one_pod_are_bounded_as_streams() -> None:
    """300 x 300 values of two labels, each under its own limit, must not make 90,000 streams."""
    guard = CardinalityGuard(500, sink="combos")
    r = LabelRenderer({"a": "{{ a }}", "b": "{{ b }}"}, guard)
    events = [_pod("junk-0", a=f"a{i}", b=f"b{j}") for i in range(300) for j in range(300)]
    streams: dict[str, int] = {}
    for start in range(0, len(events), 5000):
        for s in r.group(events[start : start + 5000]):
            streams[s.labels] = streams.get(s.labels, 0) + len(s.events)
    assert len(streams) <= 5000 + 1  # the sink-wide stream cap (Loki's default) and the overflow stream
    overflow = format_labels([("a", OVERFLOW_VALUE), ("b", OVERFLOW_VALUE)])
    assert streams[overflow] == guard.stream_overflows == _overflow_events("combos") > 80_000


def test_a_pod_spends_only_its_own_stream_budget() -> None:
    guard = CardinalityGuard(500, sink="pod-streams", max_streams=50, max_values_per_pod=200, max_streams_per_pod=10)
    r = LabelRenderer({"a": "{{ a }}", "b": "{{ b }}"}, guard)
    noisy = r.group([_pod("noisy", a=f"a{i}", b=f"b{j}") for i in range(20) for j in range(20)])
    assert len(noisy) == 10 + 1
    quiet = r.group([_pod("quiet", a="web", b="info"), _pod("quiet", a="web", b="error")])
    assert sorted(s.labels for s in quiet) == ['{a="web", b="error"}', '{a="web", b="info"}']
    # The sink-wide cap still holds when every pod stays within its own budget.
    many = r.group([_pod(f"p{p}", a=f"x{p}", b=f"y{i}") for p in range(20) for i in range(5)])
    assert len({s.labels for s in [*noisy, *quiet, *many]}) == 50 + 1
    assert guard.stream_overflows == _overflow_events("pod-streams") == (400 - 10) + (100 - 38)


def test_junk_values_of_one_pod_do_not_overflow_another_pods_first_value(caplog: pytest.LogCaptureFixture) -> None:
    """One pod logging 500 junk services spends its own budget, not the other pods' room."""
    guard = CardinalityGuard(500, sink="junk")
    r = LabelRenderer({"service": "{{ service }}"}, guard)
    with caplog.at_level(logging.WARNING, "shipper.sinks.loki"):
        junk = r.group([_pod("junk-1", service=f"junk-{i}") for i in range(500)])
        [billing] = r.group([_pod("billing-0", service="billing")])
    assert dict(billing.pairs) == {"service": "billing"}
    assert OVERFLOW_VALUE in {dict(s.pairs)["service"] for s in junk}
    assert sum(len(s.events) for s in junk if dict(s.pairs)["service"] != OVERFLOW_VALUE) < 500
    assert "pod shop/junk-1" in caplog.text  # the warning names whose budget ran out
    from shipper.metrics import REGISTRY

    counted = REGISTRY.get_sample_value("ecvi_shipper_label_overflow_total", {"sink": "junk", "label": "service"})
    assert counted == guard.overflowed["service"] > 400


def test_a_record_cannot_choose_whose_budget_it_spends() -> None:
    """The tenant is the pod the shipper derived; a record's own kubernetes object does not count."""
    guard = CardinalityGuard(500, sink="spoof", max_values_per_pod=2)
    r = LabelRenderer({"service": "{{ service }}"}, guard)
    spoofed = [Event({"service": f"s{i}", "kubernetes": {"namespace": "x", "pod_name": f"p{i}"}}, "", 0,
                     {"kubernetes": {"namespace": "shop", "pod_name": "liar"}}) for i in range(5)]
    assert [dict(s.pairs)["service"] for s in r.group(spoofed)] == ["s0", "s1", OVERFLOW_VALUE]


def test_events_without_a_pod_are_budgeted_per_source_and_jobs_by_the_cap_alone() -> None:
    guard = CardinalityGuard(5, sink="sources", max_values_per_pod=2)
    r = LabelRenderer({"service": "{{ service }}"}, guard)
    fwd = r.group([Event({"service": f"f{i}"}, "", 0, {"source": "fwd"}) for i in range(4)])
    assert [dict(s.pairs)["service"] for s in fwd] == ["f0", "f1", OVERFLOW_VALUE]
    job = r.group([Event({"service": f"j{i}"}, "", 0, {}) for i in range(5)])
    assert [dict(s.pairs)["service"] for s in job] == ["j0", "j1", "j2", OVERFLOW_VALUE]


def test_sink_builds_its_guard_from_the_options(tmp_path: object) -> None:
    from shipper.sinks.loki.config import LokiSinkConfig
    from shipper.sinks.loki.sink import LokiSink

    cfg = LokiSinkConfig.model_validate({"type": "loki", "inputs": ["app"], "endpoint": "http://127.0.0.1:3100",
                                         "max_streams": 7, "max_streams_per_pod": 3, "max_label_values_per_pod": 4})
    sink = LokiSink("opts", cfg, str(tmp_path))
    assert (sink.guard.streams.max_names, sink.guard.streams.max_per_tenant, sink.guard.max_values_per_pod) == (7, 3, 4)


def test_a_lowered_cap_still_leaves_room_for_other_pods() -> None:
    """By default one pod's share is at most half the sink-wide cap, whatever the cap is."""
    r = LabelRenderer({"service": "{{ service }}"}, CardinalityGuard(10, sink="small-cap"))
    junk = r.group([_pod("sandbox", service=f"junk-{i}") for i in range(40)])
    assert len(junk) == 5 + 1
    quiet = r.group([_pod("payments", service=s) for s in ("api", "worker", "web")])
    assert [dict(s.pairs)["service"] for s in quiet] == ["api", "worker", "web"]
