"""Index names built from event fields: valid for Elasticsearch whatever a line says, and bounded in number."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shipper.event import Event
from shipper.metrics import REGISTRY
from shipper.sinks.elasticsearch.encoder import BulkEncoder
from shipper.sinks.elasticsearch.names import IndexNamer
from shipper.sinks.elasticsearch.sink import ElasticsearchSink
from shipper.templates import NameGuard
from tests.factories import event
from tests.shipper.sinks.elasticsearch._support import DAY0_NS, make_config

HOSTILE = ["a,b*", "../x", "x y#z", "é" * 308, ".kibana_1", "_all", "-x", "+x", ".", "..", "", "A:B",
           'q"<>|?\\/', "\ud800lone", "tab\there\n", "#", "_" * 300, "-.-"]


def valid_index_name(name: str) -> bool:
    """Elasticsearch's documented rules (create index API, "Index name limitations"), checked independently.

    Lowercase only; none of \\ / * ? " < > | space , # and, since 7.0, no colon; not starting with
    - _ +; not . or ..; at most 255 bytes; a leading . is reserved for hidden and system indices.
    """
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return False
    return (
        0 < size <= 255
        and name == name.lower()
        and not any(c in name for c in '\\/*?"<>| ,#:')
        and not name.startswith(("-", "_", "+", "."))
        and name not in (".", "..")
    )


def _event(value: Any, pod: str = "web-0", n: int = 0) -> Event:
    return event({"service": value, "message": "m"}, raw="{}", ts_ns=DAY0_NS + n,
                 meta={"id": f"i{n}", "source": "app", "kubernetes": {"namespace": "shop", "pod_name": pod}})


def _overflow_count(sink: str) -> float:
    return REGISTRY.get_sample_value("ecvi_shipper_index_overflow_total", {"sink": sink}) or 0.0


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_render_to_valid_names(value: str) -> None:
    bare = BulkEncoder("{{ service }}").index_for(_event(value))
    assert valid_index_name(bare), bare
    dated = BulkEncoder("app-{{ service }}-%Y.%m.%d").index_for(_event(value))
    assert valid_index_name(dated), dated
    assert dated.startswith("app-") and dated.endswith("-2025.01.01")  # the literal parts stay


def test_a_line_cannot_name_a_system_or_hidden_index() -> None:
    enc = BulkEncoder("{{ service }}")
    assert enc.index_for(_event(".kibana_1")) == "kibana_1"
    assert enc.index_for(_event("_all")) == "all"
    assert enc.index_for(_event("..")) == "unknown"


def test_long_values_are_cut_at_a_character_boundary_to_255_bytes() -> None:
    name = BulkEncoder("app-{{ service }}-{{ level }}-%Y.%m.%d").index_for(
        Event({"service": "é" * 308, "level": "x" * 616}, "{}", DAY0_NS, {}))
    assert len(name.encode()) <= 255 and name.endswith("-2025.01.01") and "é" in name and "x" in name


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(exclude_categories=()), max_size=400) | st.integers() | st.none()
       | st.lists(st.text(max_size=5), max_size=3))
def test_any_value_renders_to_a_valid_name(value: Any) -> None:
    for template in ("{{ service }}", "logs-{{ service }}", "{{ service }}-%Y.%m.%d", "{{ service }}{{ service }}"):
        name = BulkEncoder(template).index_for(_event(value))
        assert valid_index_name(name), (template, value, name)


def test_bulk_body_carries_valid_names_for_every_event() -> None:
    enc = BulkEncoder("app-{{ service }}-%Y.%m.%d")
    batch = enc.encode([_event(v, n=i) for i, v in enumerate(HOSTILE)])
    assert len(batch.events) == len(HOSTILE) and not batch.rejected
    actions = [orjson.loads(line.split(b"\n")[0])["create"]["_index"] for line in batch.lines]
    assert all(valid_index_name(a) for a in actions), actions


def test_distinct_names_are_bounded_with_an_overflow_index() -> None:
    """5,000 services from 5,000 pods: at most max_indices of them get an index of their own."""
    enc = BulkEncoder("app-{{ service }}-%Y.%m.%d", max_indices=100, sink="es-many")
    batch = enc.encode([_event(f"svc-{i}", pod=f"pod-{i}", n=i) for i in range(5000)])
    names = {orjson.loads(line.split(b"\n")[0])["create"]["_index"] for line in batch.lines}
    assert len(names) == 100 + 1 and "app-__overflow__-2025.01.01" in names
    assert enc.names.overflowed == _overflow_count("es-many") == 4900


def test_one_pod_cannot_spend_the_other_pods_indices(caplog: pytest.LogCaptureFixture) -> None:
    enc = BulkEncoder("app-{{ service }}-%Y.%m.%d", max_indices=100, max_indices_per_pod=10, sink="es-pod")
    junk = {enc.index_for(_event(f"junk-{i}", pod="noisy")) for i in range(5000)}
    assert len(junk) == 10 + 1
    assert enc.index_for(_event("billing", pod="billing-0")) == "app-billing-2025.01.01"
    assert _overflow_count("es-pod") == 4990
    assert caplog.text.count("not created") == 1 and "pod shop/noisy" in caplog.text


def test_budget_starts_afresh_every_hour() -> None:
    now = [0.0]
    namer = IndexNamer("app-{{ service }}", guard=NameGuard(1, clock=lambda: now[0]), sink="es-hour")
    assert [namer.index_for(_event(v)) for v in "ab"] == ["app-a", "app-__overflow__"]
    now[0] += 3599
    namer.refresh()
    assert namer.index_for(_event("b")) == "app-__overflow__"
    now[0] += 1
    namer.refresh()
    assert namer.index_for(_event("b")) == "app-b"


@pytest.mark.parametrize("index", ["logs,{{ service }}", "_x-{{ service }}", ".kibana", "-logs", "a b-%Y",
                                   "x" * 256, "logs#{{ service }}"])
def test_invalid_literal_index_text_is_a_config_error(index: str) -> None:
    with pytest.raises(ValidationError, match="index"):
        make_config(index=index)


def test_sink_builds_its_guard_from_the_options(tmp_path: Any) -> None:
    cfg = make_config(index="app-{{ service }}", max_indices=7, max_indices_per_pod=3)
    guard = ElasticsearchSink("es-opts", cfg, str(tmp_path)).encoder.names.guard
    assert (guard.max_names, guard.max_per_tenant) == (7, 3)
