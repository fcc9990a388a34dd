"""The slices of Pod and Namespace objects the shipper keeps, parsed from hostile API answers.

Only the fields events carry are kept (never whole objects), annotation keys are filtered when the
object is parsed, and repeated strings (label keys and values, images, namespaces) are interned, so
memory grows with what is attached to events rather than with the size of the objects the API sends.
A malformed object raises :class:`MalformedObject` and costs that object only.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import translate
from functools import lru_cache
from types import MappingProxyType
from typing import Any

#: Annotations the file source reads to decide what is not shipped; kept whatever the filter says.
EXCLUDE_ANNOTATION = "ecvi-logs.io/exclude"
EXCLUDE_CONTAINERS_ANNOTATION = "ecvi-logs.io/exclude-containers"
ALWAYS_KEPT_ANNOTATIONS = frozenset({EXCLUDE_ANNOTATION, EXCLUDE_CONTAINERS_ANNOTATION})

#: Annotation characters (keys and values) kept per object, taken in key order, an annotation that does
#: not fit left out: whoever may create a pod writes them, and every event of the pod would carry them.
MAX_ANNOTATION_CHARS = 16_384
#: The same bound for labels (the API bounds each label, not how many there are).
MAX_LABEL_CHARS = 16_384

DEFAULT_POD_ANNOTATIONS: tuple[str, ...] = ("*",)
DEFAULT_EXCLUDE_POD_ANNOTATIONS: tuple[str, ...] = ("kubectl.kubernetes.io/last-applied-configuration",)

_INTERN_MAX = 256  # longer values are rarely shared; interning them would only cost a table entry
_EMPTY: Mapping[str, str] = MappingProxyType({})
_SHARED_MAX = 2048  # distinct mappings remembered for sharing; the table is simply emptied when full
_SHARED: dict[int, Mapping[str, str]] = {}


class MalformedObject(ValueError):
    """An API object lacks a field the cache needs, or has one of the wrong type."""


@dataclass(frozen=True, slots=True)
class PodInfo:
    """What the shipper knows about one pod on its node; ``deleted`` while kept for its last lines."""

    uid: str
    namespace: str
    name: str
    node_name: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    containers: Mapping[str, str]
    owner_kind: str | None
    owner_name: str | None
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class NamespaceInfo:
    """A namespace's labels and annotations (annotations unfiltered: only exclusion keys are read)."""

    name: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]


class AnnotationFilter:
    """Glob include/exclude patterns over annotation keys; exclusion annotations always pass."""

    def __init__(self, include: Iterable[str] = DEFAULT_POD_ANNOTATIONS,
                 exclude: Iterable[str] = DEFAULT_EXCLUDE_POD_ANNOTATIONS) -> None:
        self._include = _compile_globs(include)
        self._exclude = _compile_globs(exclude)
        self.allows = lru_cache(maxsize=4096)(self._allows)

    def _allows(self, key: str) -> bool:
        if key in ALWAYS_KEPT_ANNOTATIONS:
            return True
        return bool(self._include and self._include.match(key)) and not (
            self._exclude and self._exclude.match(key)
        )


def _compile_globs(patterns: Iterable[str]) -> re.Pattern[str] | None:
    parts = [translate(p) for p in patterns]
    return re.compile("|".join(f"(?:{p})" for p in parts)) if parts else None


def parse_pod(obj: Any, annotations: AnnotationFilter) -> PodInfo:
    """The :class:`PodInfo` of a Pod object; raises :class:`MalformedObject` naming the bad field."""
    meta = _mapping(obj, "metadata", required=True)
    spec = _mapping(obj, "spec")
    labels = _string_map(meta, "labels", budget=MAX_LABEL_CHARS)
    controller = _controller_ref(meta)
    owner_kind, owner_name = resolve_owner(controller, labels.get("pod-template-hash"))
    containers: dict[str, str] = {}
    for field in ("initContainers", "containers", "ephemeralContainers"):
        items = spec.get(field) or []
        if not isinstance(items, list):
            raise MalformedObject(f"spec.{field}: not a list")
        for c in items:
            if not isinstance(c, dict) or not isinstance(c.get("name"), str):
                raise MalformedObject(f"spec.{field}[].name: missing")
            image = c.get("image")
            containers[_intern(c["name"])] = _intern(image) if isinstance(image, str) else ""
    return PodInfo(
        uid=_string(meta, "uid", "metadata"),
        namespace=_intern(_string(meta, "namespace", "metadata")),
        name=_string(meta, "name", "metadata"),
        node_name=_intern(node if isinstance(node := spec.get("nodeName"), str) else ""),
        labels=labels,
        annotations=_string_map(meta, "annotations", keep=annotations.allows, budget=MAX_ANNOTATION_CHARS),
        containers=MappingProxyType(containers) if containers else _EMPTY,
        owner_kind=owner_kind,
        owner_name=owner_name,
    )


def parse_namespace(obj: Any) -> NamespaceInfo:
    """The :class:`NamespaceInfo` of a Namespace object (only the exclusion annotations are kept)."""
    meta = _mapping(obj, "metadata", required=True)
    return NamespaceInfo(
        name=_intern(_string(meta, "name", "metadata")),
        labels=_string_map(meta, "labels", budget=MAX_LABEL_CHARS),
        annotations=_string_map(meta, "annotations", keep=ALWAYS_KEPT_ANNOTATIONS.__contains__,
                                budget=MAX_ANNOTATION_CHARS),
    )


def object_key(obj: Any) -> tuple[str, str]:
    """``(namespace, name)`` of any object (namespace "" for cluster-scoped ones)."""
    meta = _mapping(obj, "metadata", required=True)
    ns = meta.get("namespace", "")
    return (ns if isinstance(ns, str) else "", _string(meta, "name", "metadata"))


def resource_version(obj: Any) -> str | None:
    """``metadata.resourceVersion`` if the object has a usable one."""
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    rv = meta.get("resourceVersion") if isinstance(meta, dict) else None
    return rv if isinstance(rv, str) and rv else None


def resolve_owner(ref: Mapping[str, Any] | None, template_hash: str | None) -> tuple[str | None, str | None]:
    """``(kind, name)`` of the workload owning a pod.

    RBAC allows pods and namespaces only, so a ReplicaSet's own owner cannot be fetched: a ReplicaSet
    named ``<deployment>-<hash>`` whose hash is the pod's ``pod-template-hash`` label is what a
    Deployment creates, and is reported as that Deployment.
    """
    if ref is None:
        return None, None
    kind, name = ref.get("kind"), ref.get("name")
    if not isinstance(kind, str) or not isinstance(name, str) or not kind or not name:
        return None, None
    if kind == "ReplicaSet" and template_hash and name.endswith("-" + template_hash):
        deployment = name[: -len(template_hash) - 1]
        if deployment:
            return "Deployment", _intern(deployment)
    return _intern(kind), _intern(name)


def _controller_ref(meta: Mapping[str, Any]) -> Mapping[str, Any] | None:
    refs = meta.get("ownerReferences")
    if not isinstance(refs, list):
        return None
    refs = [r for r in refs if isinstance(r, dict)]
    return next((r for r in refs if r.get("controller") is True), refs[0] if refs else None)


def _mapping(obj: Any, key: str, *, required: bool = False) -> Mapping[str, Any]:
    if not isinstance(obj, dict):
        raise MalformedObject("object: not a JSON object")
    value = obj.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise MalformedObject(f"{key}: not an object")
    return value


def _string(meta: Mapping[str, Any], key: str, where: str) -> str:
    value = meta.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedObject(f"{where}.{key}: missing or not a string")
    return value


def _string_map(meta: Mapping[str, Any], key: str, keep: Any = None, budget: int | None = None) -> Mapping[str, str]:
    raw = meta.get(key)
    if raw is None:
        return _EMPTY
    if not isinstance(raw, dict):
        raise MalformedObject(f"metadata.{key}: not an object")
    items = {k: v for k, v in raw.items() if isinstance(k, str) and isinstance(v, str) and (keep is None or keep(k))}
    if budget is not None:
        items = within_budget(items, budget)
    out = {_intern(k): _intern(v) for k, v in items.items()}
    return _shared_mapping(out) if out else _EMPTY


def within_budget(items: Mapping[str, str], budget: int = MAX_ANNOTATION_CHARS) -> dict[str, str]:
    """The labels or annotations that fit ``budget`` characters, taken in key order (one too big is left out, smaller
    ones after it still fit); the exclusion annotations are kept whenever they fit the budget on their own."""
    out: dict[str, str] = {}
    spent = 0
    for k in sorted(items):
        size = len(k) + len(items[k])
        if spent + size <= budget:
            spent += size
            out[k] = items[k]
        elif k in ALWAYS_KEPT_ANNOTATIONS and size <= budget:
            out[k] = items[k]
    return out


def _shared_mapping(items: dict[str, str]) -> Mapping[str, str]:
    """One read-only mapping for equal contents: a Deployment's replicas share their labels and annotations."""
    key = hash(frozenset(items.items()))
    cached = _SHARED.get(key)
    if cached is not None and cached == items:
        return cached
    if len(_SHARED) >= _SHARED_MAX:
        _SHARED.clear()
    proxy = _SHARED[key] = MappingProxyType(items)
    return proxy


def _intern(value: str) -> str:
    return sys.intern(value) if len(value) <= _INTERN_MAX else value
