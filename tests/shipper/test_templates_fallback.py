"""Templates over label keys holding dots and slashes, and ``| default(...)`` alternatives, in every consumer."""

from __future__ import annotations

from typing import Any

import pytest

from shipper.event import Event, lookup_path
from shipper.sinks.cloudwatch.config import CloudWatchSinkConfig
from shipper.sinks.cloudwatch.sink import CloudWatchSink
from shipper.sinks.elasticsearch.names import IndexNamer
from shipper.sinks.loki.labels import CardinalityGuard, LabelRenderer, field_getter
from shipper.templates import Choice, choices, compile_template, is_template, lookup_field, render

NAME_LABEL = "{{ kubernetes.pod_labels.app.kubernetes.io/name }}"
WITH_FALLBACK = '{{ kubernetes.pod_labels.app.kubernetes.io/name | default(service) | default("unknown-app") }}'


def ev(record: dict[str, Any] | None = None, labels: dict[str, str] | None = None, pod: str = "api-1") -> Event:
    meta: dict[str, Any] = {"source": "app", "kubernetes": {"namespace": "shop", "pod_name": pod}}
    if labels is not None:
        meta["kubernetes"]["pod_labels"] = labels
    rec = record or {"message": "m"}
    return Event(rec, str(rec), 1, meta)


# -- parsing --------------------------------------------------------------------------------------


def test_plain_fields_compile_as_before() -> None:
    assert compile_template("{{ service }}-{{ kubernetes.pod_name }}") == (["", "-", ""],
                                                                          ["service", "kubernetes.pod_name"])
    assert choices("kubernetes.pod_name") == (Choice(("kubernetes", "pod_name")),)


def test_alternatives_compile_to_one_field_with_its_choices() -> None:
    literals, fields = compile_template('x-{{kubernetes.pod_labels.app.kubernetes.io/name|default( service )'
                                        '| default("n/a") }}-y')
    assert literals == ["x-", "-y"]
    assert fields == ['kubernetes.pod_labels.app.kubernetes.io/name | default(service) | default("n/a")']
    assert choices(fields[0]) == (Choice(("kubernetes", "pod_labels", "app", "kubernetes", "io/name")),
                                  Choice(("service",)), Choice(None, "n/a"))


@pytest.mark.parametrize("text", ["{{ a | upper }}", '{{ a | default("x}") }}', "{{ a | default() }}",
                                  '{{ "lit" }}', "{{ a b }}"])
def test_anything_else_stays_literal_text(text: str) -> None:
    assert not is_template(text)
    assert compile_template(text) == ([text], [])


# -- values ---------------------------------------------------------------------------------------


def test_label_keys_with_dots_and_slashes() -> None:
    e = ev(labels={"app.kubernetes.io/name": "checkout", "app": "legacy"})
    assert render(NAME_LABEL, e) == "checkout"
    assert render("{{ kubernetes.pod_labels.app }}", e) == "legacy"  # the plain key still wins when present
    nested = ev({"a": {"b.c": {"d": 1}}, "a.b": {"c": 2}})
    assert render("{{ a.b.c.d }}", nested) == "1"
    assert render("{{ a.b.c }}", nested) == "2"  # longest joined key first, on a miss


def test_joined_keys_do_not_leave_the_authoritative_root() -> None:
    """A record's own ``kubernetes.pod_labels`` cannot supply a label the shipper's metadata lacks."""
    forged = {"message": "m", "kubernetes": {"pod_labels": {"app.kubernetes.io/name": "forged"}}}
    e = ev(forged, labels={})
    assert render(NAME_LABEL, e, "none") == "none"
    assert lookup_path(forged, e.meta, ("kubernetes", "pod_labels", "app.kubernetes.io/name")) is None


def test_default_is_the_first_present_and_not_empty_alternative() -> None:
    assert render(WITH_FALLBACK, ev({"service": "billing"}, labels={"app.kubernetes.io/name": "checkout"})) \
        == "checkout"
    assert render(WITH_FALLBACK, ev({"service": "billing"}, labels={})) == "billing"
    assert render(WITH_FALLBACK, ev({"service": ""}, labels={"app.kubernetes.io/name": ""})) == "unknown-app"
    assert render("{{ a | default(b) }}", ev({"b": 0})) == "0"  # zero is a value
    assert render("{{ a | default(b) }}", ev({}), "missing") == "missing"
    assert lookup_field({}, {}, "a | default(b)") is None


# -- consumers ------------------------------------------------------------------------------------


def test_loki_labels_with_alternatives_and_dotted_keys() -> None:
    renderer = LabelRenderer({"app": WITH_FALLBACK, "level": "{{ level }}"}, CardinalityGuard(100))
    streams = renderer.group([
        ev({"level": "INFO"}, labels={"app.kubernetes.io/name": "checkout"}),
        ev({"level": "INFO", "service": "billing"}, labels={}),
        ev({"level": "INFO"}, labels={}),
    ])
    assert sorted(s.labels for s in streams) == ['{app="billing", level="INFO"}', '{app="checkout", level="INFO"}',
                                                 '{app="unknown-app", level="INFO"}']
    assert field_getter("a | default(b)")({"b": "x"}, {}) == "x"


def test_loki_fast_path_is_kept_for_top_level_fields_only() -> None:
    assert LabelRenderer({"s": "{{ service }}"}, CardinalityGuard(10))._names == ("service",)
    assert LabelRenderer({"s": "{{ service | default(app) }}"}, CardinalityGuard(10))._names is None
    # A record cannot reach a fallback's cached labels by holding a key named like the whole field.
    r = LabelRenderer({"s": "{{ service | default(app) }}"}, CardinalityGuard(10))
    r.group([ev({"app": "real"})])
    (s,) = r.group([ev({"service | default(app)": "real", "app": "other"})])
    assert s.labels == '{s="other"}'


@pytest.mark.parametrize("value", ["x" * 5000, "名前/ラベル", 'quote" back\\slash\nnewline', "\x00\x7f", ""])
def test_hostile_label_values_from_pod_labels_are_sanitised_like_record_values(value: str) -> None:
    """A label value that came through a dotted label key is escaped and bounded exactly as one from a record."""
    via_labels = LabelRenderer({"app": NAME_LABEL}, CardinalityGuard(100)).group(
        [ev(labels={"app.kubernetes.io/name": value})])
    via_record = LabelRenderer({"app": "{{ app }}"}, CardinalityGuard(100)).group([ev({"app": value})])
    assert [s.labels for s in via_labels] == [s.labels for s in via_record]
    assert via_labels[0].pairs == via_record[0].pairs


def test_hostile_label_keys_are_looked_up_not_interpreted() -> None:
    weird = "a.b/c..d-" + "x" * 300
    e = ev(labels={weird: "v", "é" * 5000: "{{ service }}", "a": "not a dict"})
    assert render("{{ kubernetes.pod_labels." + weird + " }}", e) == "v"
    assert render("{{ kubernetes.pod_labels.a.b }}", e, "none") == "none"


def test_elasticsearch_index_with_alternatives() -> None:
    namer = IndexNamer("logs-" + WITH_FALLBACK + "-%Y.%m.%d")
    e = ev({"service": "Billing"}, labels={})
    e.ts_ns = 1_735_689_600 * 10**9
    assert namer.index_for(e) == "logs-billing-2025.01.01"
    e2 = ev(labels={"app.kubernetes.io/name": "checkout"})
    e2.ts_ns = e.ts_ns
    assert namer.index_for(e2) == "logs-checkout-2025.01.01"


def test_cloudwatch_names_with_alternatives(tmp_path: Any) -> None:
    config = CloudWatchSinkConfig.model_validate({
        "type": "cloudwatch", "inputs": ["app"], "region": "us-east-1", "endpoint": "http://127.0.0.1:1",
        "group": "/ecvi/{{ kubernetes.namespace }}", "stream": WITH_FALLBACK,
    })
    sink = CloudWatchSink("cw-templates", config, str(tmp_path))
    assert sink.destination(ev({"service": "billing"}, labels={})) == ("/ecvi/shop", "billing")
    assert sink.destination(ev(labels={"app.kubernetes.io/name": "checkout"})) == ("/ecvi/shop", "checkout")
