"""The Kubernetes API's metadata in Elasticsearch: labels and annotations as flattened fields.

A pod labelled both ``app`` and ``app.kubernetes.io/name`` makes ``pod_labels.app`` a keyword and an
object at once under a dynamic mapping, and Elasticsearch refuses the document.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from shipper.event import Event
from shipper.sinks.elasticsearch.config import ElasticsearchSinkConfig
from shipper.sinks.elasticsearch.encoder import build_document
from shipper.sinks.elasticsearch.sink import ElasticsearchSink
from shipper.sinks.elasticsearch.template import IGNORE_ABOVE, index_template
from tests.services.es import Elasticsearch

DAY0_NS = 1_735_689_600 * 1_000_000_000  # 2025-01-01T00:00:00Z
K8S = {"namespace": "prod", "pod_name": "backend-7d9f-abcde", "container_name": "api", "container_id": "f" * 64}
SCALARS = ("namespace", "pod_name", "container_name", "container_id", "pod_uid", "node_name",
           "container_image", "owner_kind", "owner_name")
MAPS = ("pod_labels", "pod_annotations", "namespace_labels")


def _kube_props() -> dict[str, Any]:
    props: dict[str, Any] = index_template("ecvi-logs-*")["template"]["mappings"]["properties"]
    return props["kubernetes"]["properties"]


def test_labels_and_annotations_are_flattened() -> None:
    kube = _kube_props()
    for name in MAPS:
        assert kube[name] == {"type": "flattened", "ignore_above": IGNORE_ABOVE}, name


def test_scalar_kubernetes_fields_are_keywords() -> None:
    kube = _kube_props()
    for name in SCALARS:
        assert kube[name] == {"type": "keyword", "ignore_above": IGNORE_ABOVE}, name
    assert set(kube) == set(SCALARS) | set(MAPS)


def _pod_event(n: int, labels: dict[str, str]) -> Event:
    """An event as the file source makes it for a pod the API described."""
    record = {"timestamp": "2025-01-01T00:00:00.000Z", "level": "info", "message": f"line {n}"}
    kube = {**K8S, "pod_uid": f"uid-{n}", "node_name": "node-1", "container_image": "registry/app:1.0",
            "owner_kind": "ReplicaSet", "owner_name": "backend-7d9f", "pod_labels": labels,
            "pod_annotations": {"prometheus.io/scrape": "true", "prometheus.io": "x"},
            "namespace_labels": {"kubernetes.io/metadata.name": "prod", "kubernetes.io": "y"}}
    return Event(record, orjson.dumps(record).decode(), DAY0_NS + n, {"id": f"k8s:{n}", "source": "app",
                                                                      "kubernetes": kube})


def _clashing_events() -> list[Event]:
    return [_pod_event(1, {"app": "backend"}),
            _pod_event(2, {"app": "backend", "app.kubernetes.io/name": "orders"})]


def test_document_carries_the_api_metadata() -> None:
    event = _clashing_events()[1]
    doc = build_document(event)
    assert doc["kubernetes"]["pod_labels"] == {"app": "backend", "app.kubernetes.io/name": "orders"}
    assert doc["kubernetes"]["node_name"] == "node-1"
    assert doc["kubernetes"]["namespace_labels"]["kubernetes.io/metadata.name"] == "prod"


@pytest.fixture
def prefix(es: Elasticsearch) -> Iterator[str]:
    name = f"ecvi-k8s-{uuid.uuid4().hex[:8]}"
    yield name
    with es.client() as client:
        indices = [i["index"] for i in client.cat.indices(index=f"{name}-*", format="json", h="index")]
        if indices:  # the test cluster refuses wildcard deletes
            client.indices.delete(index=",".join(indices))
        client.options(ignore_status=(400, 404)).indices.delete_index_template(name=name)


async def _send(es: Elasticsearch, prefix: str, tmp_path: Any, install_template: bool) -> list[str]:
    """The two clashing events through the sink; the reasons of those Elasticsearch refused."""
    config = ElasticsearchSinkConfig.model_validate({
        "type": "elasticsearch", "inputs": ["app"], "endpoint": es.url, "index": f"{prefix}-%Y.%m.%d",
        "template_name": prefix, "install_template": install_template})
    sink = ElasticsearchSink("es", config, str(tmp_path))
    await sink.start()
    try:
        reasons = []
        for event in _clashing_events():  # one at a time: the first one's mapping meets the second
            outcome = await sink.send([event])
            reasons += [reason for _, reason in outcome.rejected]
        return reasons
    finally:
        await sink.close()


@pytest.mark.integration
@pytest.mark.anyio
async def test_dynamic_mapping_refuses_clashing_label_keys(es: Elasticsearch, prefix: str,
                                                           tmp_path: Any) -> None:
    """Without our template Elasticsearch refuses the second pod's document (why the mapping exists)."""
    reasons = await _send(es, prefix, tmp_path, install_template=False)
    assert len(reasons) == 1 and "pod_labels.app" in reasons[0], reasons


@pytest.mark.integration
@pytest.mark.anyio
async def test_clashing_label_keys_are_indexed_and_searchable(es: Elasticsearch, prefix: str,
                                                              tmp_path: Any) -> None:
    assert await _send(es, prefix, tmp_path, install_template=True) == []
    with es.client() as client:
        client.indices.refresh(index=f"{prefix}-*")
        assert client.count(index=f"{prefix}-*")["count"] == 2
        found = client.search(index=f"{prefix}-*", query={
            "term": {"kubernetes.pod_labels.app.kubernetes.io/name": "orders"}})
        assert [h["_id"] for h in found["hits"]["hits"]] == ["k8s:2"]
        both = client.count(index=f"{prefix}-*", query={"term": {"kubernetes.pod_labels.app": "backend"}})
        assert both["count"] == 2
        by_node = client.count(index=f"{prefix}-*", query={"term": {"kubernetes.node_name": "node-1"}})
        assert by_node["count"] == 2
        ns = client.count(index=f"{prefix}-*", query={
            "term": {"kubernetes.namespace_labels.kubernetes.io/metadata.name": "prod"}})
        assert ns["count"] == 2
