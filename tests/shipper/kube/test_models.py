"""Pod and namespace parsing: the fields kept, owners, annotation filtering, hostile objects."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from shipper.kube.models import (
    MAX_ANNOTATION_CHARS,
    MAX_LABEL_CHARS,
    AnnotationFilter,
    MalformedObject,
    parse_namespace,
    parse_pod,
    resolve_owner,
)
from tests.shipper.kube._fakeapi import make_pod


def test_pod_keeps_identity_labels_images_of_all_containers_and_owner() -> None:
    obj = make_pod("web-7d4b9c-x2x", "shop", labels={"app": "web", "pod-template-hash": "7d4b9c"},
                   annotations={"team": "a"}, owner=("ReplicaSet", "web-7d4b9c"),
                   containers={"app": "registry/web:2", "sidecar": "envoy:1.30"})
    obj["spec"]["initContainers"] = [{"name": "migrate", "image": "registry/web:2"}]
    obj["status"] = {"phase": "Running", "containerStatuses": [{"name": "app"}]}
    pod = parse_pod(obj, AnnotationFilter())
    assert (pod.uid, pod.namespace, pod.name, pod.node_name) == ("uid-shop-web-7d4b9c-x2x", "shop", "web-7d4b9c-x2x",
                                                                 "node-a")
    assert dict(pod.labels) == {"app": "web", "pod-template-hash": "7d4b9c"}
    assert dict(pod.containers) == {"migrate": "registry/web:2", "app": "registry/web:2", "sidecar": "envoy:1.30"}
    assert (pod.owner_kind, pod.owner_name) == ("Deployment", "web")
    assert not pod.deleted
    with pytest.raises(TypeError):
        pod.labels["x"] = "y"  # type: ignore[index]


@pytest.mark.parametrize(
    ("ref", "template_hash", "expected"),
    [
        ({"kind": "ReplicaSet", "name": "api-5f6d8"}, "5f6d8", ("Deployment", "api")),
        ({"kind": "ReplicaSet", "name": "api-v2-5f6d8"}, "5f6d8", ("Deployment", "api-v2")),
        ({"kind": "ReplicaSet", "name": "api-5f6d8"}, "other", ("ReplicaSet", "api-5f6d8")),
        ({"kind": "ReplicaSet", "name": "standalone"}, None, ("ReplicaSet", "standalone")),
        ({"kind": "ReplicaSet", "name": "-5f6d8"}, "5f6d8", ("ReplicaSet", "-5f6d8")),
        ({"kind": "StatefulSet", "name": "db"}, None, ("StatefulSet", "db")),
        ({"kind": "Job", "name": "nightly-2891"}, None, ("Job", "nightly-2891")),
        ({"kind": 3, "name": "x"}, None, (None, None)),
        ({"kind": "Node"}, None, (None, None)),
        (None, None, (None, None)),
    ],
)
def test_owner_resolution(ref: dict[str, Any] | None, template_hash: str | None, expected: tuple[Any, Any]) -> None:
    assert resolve_owner(ref, template_hash) == expected


def test_controller_reference_wins_over_the_first_one() -> None:
    obj = make_pod("p")
    obj["metadata"]["ownerReferences"] = [
        {"kind": "ConfigMap", "name": "cfg"}, "garbage", {"kind": "StatefulSet", "name": "db", "controller": True}]
    assert parse_pod(obj, AnnotationFilter()).owner_name == "db"
    obj["metadata"]["ownerReferences"] = [{"kind": "ConfigMap", "name": "cfg"}]
    assert parse_pod(obj, AnnotationFilter()).owner_kind == "ConfigMap"


def test_annotations_are_filtered_when_parsed_and_exclusion_keys_always_kept() -> None:
    annotations = {
        "kubectl.kubernetes.io/last-applied-configuration": "{" + "x" * 5000 + "}",
        "prometheus.io/scrape": "true",
        "team.example.com/owner": "payments",
        "ecvi-logs.io/exclude": "false",
        "ecvi-logs.io/exclude-containers": "istio-proxy",
    }
    obj = make_pod("p", annotations=annotations)
    default = parse_pod(obj, AnnotationFilter())
    assert set(default.annotations) == set(annotations) - {"kubectl.kubernetes.io/last-applied-configuration"}
    narrow = parse_pod(obj, AnnotationFilter(include=["team.example.com/*"], exclude=[]))
    assert dict(narrow.annotations) == {"team.example.com/owner": "payments", "ecvi-logs.io/exclude": "false",
                                        "ecvi-logs.io/exclude-containers": "istio-proxy"}
    none = parse_pod(obj, AnnotationFilter(include=[], exclude=["*"]))
    assert set(none.annotations) == {"ecvi-logs.io/exclude", "ecvi-logs.io/exclude-containers"}


def test_namespace_keeps_labels_and_only_exclusion_annotations() -> None:
    ns = parse_namespace({"metadata": {"name": "batch", "labels": {"team": "data"},
                                       "annotations": {"ecvi-logs.io/exclude": "true", "big": "x" * 10000}}})
    assert (ns.name, dict(ns.labels), dict(ns.annotations)) == ("batch", {"team": "data"},
                                                                {"ecvi-logs.io/exclude": "true"})


def test_label_strings_are_interned_so_replicas_share_them() -> None:
    a = parse_pod(make_pod("a", labels={"app.kubernetes.io/name": "checkout-" + "svc"}), AnnotationFilter())
    b = parse_pod(make_pod("b", labels={"app.kubernetes.io/name": "checkout-" + "svc"}), AnnotationFilter())
    (ka, va), (kb, vb) = next(iter(a.labels.items())), next(iter(b.labels.items()))
    assert ka is kb and va is vb and va is sys.intern("checkout-svc")


@pytest.mark.parametrize(
    "obj",
    [
        None, [], "pod", {}, {"metadata": "x"}, {"metadata": {"namespace": "d", "uid": "u"}},
        {"metadata": {"name": "p", "uid": "u"}}, {"metadata": {"name": "p", "namespace": "d"}},
        {"metadata": {"name": 5, "namespace": "d", "uid": "u"}},
        {"metadata": {"name": "p", "namespace": "d", "uid": "u", "labels": ["a"]}},
        {"metadata": {"name": "p", "namespace": "d", "uid": "u"}, "spec": []},
        {"metadata": {"name": "p", "namespace": "d", "uid": "u"}, "spec": {"containers": [{"image": "x"}]}},
        {"metadata": {"name": "p", "namespace": "d", "uid": "u"}, "spec": {"initContainers": {"a": 1}}},
    ],
)
def test_malformed_pods_raise_malformed_object(obj: Any) -> None:
    with pytest.raises(MalformedObject):
        parse_pod(obj, AnnotationFilter())


def test_odd_but_harmless_fields_are_tolerated() -> None:
    obj = make_pod("p", labels={"ok": "1"})
    obj["metadata"]["labels"]["num"] = 5  # not a string: skipped, the pod kept
    obj["metadata"]["ownerReferences"] = "nonsense"
    obj["spec"]["nodeName"] = None
    obj["spec"]["containers"].append({"name": "noimage"})
    pod = parse_pod(obj, AnnotationFilter())
    assert dict(pod.labels) == {"ok": "1"} and pod.owner_kind is None and pod.node_name == ""
    assert pod.containers["noimage"] == ""


def test_annotations_are_bounded_per_pod_in_key_order_and_exclusions_survive() -> None:
    annotations = {
        "a-big": "x" * 20_000,  # alone over the budget: left out
        "b-fill": "y" * (MAX_ANNOTATION_CHARS - 100),
        "c-next": "z" * 200,  # does not fit after b-fill: left out
        "d-small": "ok",  # still fits
        "ecvi-logs.io/exclude": "true",  # kept though the budget is spent
    }
    pod = parse_pod(make_pod("p", annotations=annotations), AnnotationFilter())
    assert sorted(pod.annotations) == ["b-fill", "d-small", "ecvi-logs.io/exclude"]
    assert sum(len(k) + len(v) for k, v in pod.annotations.items()) <= MAX_ANNOTATION_CHARS + 100
    huge = parse_pod(make_pod("p", annotations={"ecvi-logs.io/exclude-containers": "c," * 10_000}),
                     AnnotationFilter())
    assert dict(huge.annotations) == {}


def test_labels_are_bounded_per_object() -> None:
    labels = {f"k{i:05d}": "v" * 60 for i in range(2000)}  # each label valid, 130,000 characters in all
    pod = parse_pod(make_pod("p", labels=labels), AnnotationFilter())
    ns = parse_namespace({"metadata": {"name": "n", "labels": labels}})
    for kept in (pod.labels, ns.labels):
        assert 0 < sum(len(k) + len(v) for k, v in kept.items()) <= MAX_LABEL_CHARS
        assert "k00000" in kept and "k01999" not in kept
