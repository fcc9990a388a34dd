"""What the cache holds per pod, measured with tracemalloc the way the API delivers pods (parsed from JSON).

The all-unique bound includes the interpreter's interned-string table growing (one resize is ~1 MB).
"""

from __future__ import annotations

import gc
import tracemalloc
import uuid

import orjson
import pytest

from shipper.kube.models import AnnotationFilter, PodInfo, parse_pod
from shipper.kube.store import ObjectStore
from tests.shipper.kube._fakeapi import make_pod, realistic_pod_fields


def cached_bytes(replicas: int, count: int = 1000) -> tuple[int, ObjectStore[tuple[str, str], PodInfo]]:
    raw = [orjson.dumps(make_pod(**realistic_pod_fields(i, replicas), uid=str(uuid.UUID(int=i + 1))))
           for i in range(count)]
    annotations = AnnotationFilter()
    gc.collect()
    tracemalloc.start()
    try:
        store: ObjectStore[tuple[str, str], PodInfo] = ObjectStore(
            "pod", lambda o: parse_pod(o, annotations), lambda p: (p.namespace, p.name), max_items=10 * count,
            grace_secs=60.0, on_change=lambda: None)
        for line in raw:
            assert store.upsert(orjson.loads(line))
        del raw
        gc.collect()
        return tracemalloc.get_traced_memory()[0], store
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(("replicas", "bound"), [(20, 1_000_000), (1, 4_500_000)], ids=["20-replicas", "all-unique"])
def test_a_thousand_pods_with_ten_labels_and_five_annotations_stay_small(replicas: int, bound: int) -> None:
    size, store = cached_bytes(replicas)
    assert len(store) == 1000
    print(f"1000 pods, {replicas} per Deployment: {size} bytes cached")
    assert size < bound


def test_replicas_share_their_label_and_annotation_mappings() -> None:
    first = parse_pod(make_pod(**realistic_pod_fields(0)), AnnotationFilter())
    second = parse_pod(make_pod(**realistic_pod_fields(1)), AnnotationFilter())
    other = parse_pod(make_pod(**realistic_pod_fields(20)), AnnotationFilter())
    assert first.labels is second.labels and first.annotations is second.annotations
    assert first.labels is not other.labels and first.labels != other.labels
