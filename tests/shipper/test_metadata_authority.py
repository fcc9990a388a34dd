"""A record's own ``kubernetes`` object never overrides the metadata the shipper derived."""

from __future__ import annotations

from shipper.sinks.loki.encoder import ProtobufEncoder, StructuredMetadata
from shipper.sinks.loki.labels import CardinalityGuard, LabelRenderer, field_getter
from shipper.templates import render
from tests.factories import event

_FORGED = '{"message":"hi","kubernetes":{"namespace":"payments","pod_name":"billing-7d9f"}}'
_META = {"kubernetes": {"namespace": "sandbox", "pod_name": "evil-1", "container_name": "app"}}


def test_event_get_prefers_derived_metadata() -> None:
    e = event(raw=_FORGED, ts_ns=1, meta=_META)
    assert e.get("kubernetes.namespace") == "sandbox"
    assert e.get("kubernetes.pod_name") == "evil-1"
    assert e.get("kubernetes") == _META["kubernetes"]


def test_record_keys_the_shipper_did_not_derive_are_not_read_from_the_record() -> None:
    # Under an authoritative root the record is not consulted at all, not even for keys meta lacks.
    e = event(raw='{"kubernetes":{"namespace":"payments","node":"n1"}}', ts_ns=1, meta=_META)
    assert e.get("kubernetes.node") is None


def test_record_kubernetes_is_used_when_the_shipper_derived_none() -> None:
    # A forward peer (e.g. Fluent Bit's kubernetes filter) sends its own metadata and no path exists.
    e = event(raw=_FORGED, ts_ns=1, meta={"source": "fwd"})
    assert e.get("kubernetes.namespace") == "payments"


def test_templates_and_loki_labels_use_derived_metadata() -> None:
    e = event(raw=_FORGED, ts_ns=1, meta=_META)
    assert render("/ecvi/{{ kubernetes.namespace }}/{{ kubernetes.pod_name }}", e) == "/ecvi/sandbox/evil-1"
    for path in ("kubernetes.namespace", "kubernetes.pod_name", "kubernetes"):
        assert field_getter(path)(e.record, e.meta) == e.get(path)
    renderer = LabelRenderer({"namespace": "{{ kubernetes.namespace }}", "pod": "{{ kubernetes.pod_name }}"},
                             CardinalityGuard(100))
    labels, _pairs = renderer.stream_for(e)
    assert labels == '{namespace="sandbox", pod="evil-1"}'


def test_loki_structured_metadata_of_the_whole_root_is_the_derived_one() -> None:
    e = event(raw=_FORGED, ts_ns=1, meta=_META)
    metadata = StructuredMetadata(["kubernetes"])
    assert metadata.encode_all([e]) == [metadata.encode(e)]
    (wire,) = metadata.encode_all([e])
    assert b"sandbox" in wire and b"payments" not in wire
    streams = LabelRenderer({"app": "x"}, CardinalityGuard(10)).group([e])
    assert wire in ProtobufEncoder(metadata).serialize(streams)  # the line itself is sent as written
