"""``{{ field.path }}`` templates over an event's record and metadata (labels, streams, indices).

A field is a dotted path; a key that itself holds dots or slashes (the label
``app.kubernetes.io/name``) is found by writing it as part of the path
(``{{ kubernetes.pod_labels.app.kubernetes.io/name }}``, see :func:`shipper.event.lookup_path`).
Alternatives follow ``| default(...)``: ``{{ kubernetes.pod_labels.app | default(service) | default("web") }}``
is the first of them that is present and not empty, a quoted literal being always present.

Names built from event fields are hostile input: besides rendering, this module holds the one
budget every sink uses to bound how many distinct names its templates create (:class:`NameGuard`),
charged per tenant (:func:`tenant_of`) so one pod cannot spend what the others need.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from shipper.event import Event, lookup_path

_PATH = r"[A-Za-z0-9_@.\-/]+"
_CHOICE = rf'(?:{_PATH}|"[^"{{}}]*")'
_FIELD = re.compile(rf"\{{\{{\s*({_PATH}(?:\s*\|\s*default\(\s*{_CHOICE}\s*\))*)\s*\}}\}}")
_DEFAULT = re.compile(rf"\|\s*default\(\s*({_CHOICE})\s*\)")

#: The window over which name budgets are counted (they start afresh each hour).
WINDOW_SECS = 3600.0


@dataclass(frozen=True, slots=True)
class Choice:
    """One alternative of a template field: a pre-split dotted path, or a literal (``path`` None)."""

    path: tuple[str, ...] | None
    literal: str = ""


@lru_cache(maxsize=1024)
def compile_template(template: str) -> tuple[list[str], list[str]]:
    """``(literals, fields)`` of ``template``; ``literals`` has one more element (cached).

    A field is its dotted path, or with alternatives ``path | default(other) | default("text")``
    (spaces normalised); :func:`choices` splits it, :func:`lookup_field` reads it.
    """
    literals: list[str] = []
    fields: list[str] = []
    pos = 0
    for m in _FIELD.finditer(template):
        literals.append(template[pos : m.start()])
        fields.append(_normalised(m.group(1)))
        pos = m.end()
    literals.append(template[pos:])
    return literals, fields


def _normalised(field: str) -> str:
    head = field.split("|", 1)[0].strip()
    return "".join([head, *(f" | default({c})" for c in _DEFAULT.findall(field))])


def has_alternatives(field: str) -> bool:
    """Whether a field of :func:`compile_template` has ``| default(...)`` alternatives."""
    return "|" in field


@lru_cache(maxsize=4096)
def choices(field: str) -> tuple[Choice, ...]:
    """The alternatives of a field of :func:`compile_template`, in order (one for a plain path)."""
    head = field.split("|", 1)[0].strip()
    out = [Choice(tuple(head.split(".")))]
    for c in _DEFAULT.findall(field) if has_alternatives(field) else ():
        out.append(Choice(None, c[1:-1]) if c.startswith('"') else Choice(tuple(c.split("."))))
    return tuple(out)


def lookup_field(record: dict[str, Any], meta: dict[str, Any], field: str) -> Any:
    """A field's value: a plain path's as :func:`lookup_path` finds it (None when absent); else the
    first alternative present and not empty (None when none is)."""
    if not has_alternatives(field):
        return lookup_path(record, meta, choices(field)[0].path or ())
    for c in choices(field):
        v = c.literal if c.path is None else lookup_path(record, meta, c.path)
        if v is not None and v != "":
            return v
    return None


def is_template(text: str) -> bool:
    return bool(_FIELD.search(text))


def render(template: str, event: Event, missing: str = "") -> str:
    """Fill in each ``{{ path }}`` from the record, then the metadata; ``missing`` when absent."""
    literals, fields = compile_template(template)
    if not fields:
        return template
    out = [literals[0]]
    record, meta = event.record, event.meta
    for i, field in enumerate(fields):
        v: Any = lookup_field(record, meta, field)
        out.append(missing if v is None else str(v))
        out.append(literals[i + 1])
    return "".join(out)


def tenant_of(meta: dict[str, Any]) -> Hashable | None:
    """Whose budget an event spends: its pod (namespace, pod name), else its source, else None.

    Only metadata the shipper derived is read (the kubelet's log path, the source's name): a record
    cannot choose whose budget it spends. None means an event of the shipper's own jobs (a restore).
    """
    k8s = meta.get("kubernetes")
    if type(k8s) is dict:
        pod = k8s.get("pod_name")
        if pod is not None:
            return (k8s.get("namespace"), pod)
    return meta.get("source")


def describe_tenant(tenant: Hashable | None) -> str:
    """``pod ns/name`` or ``source app``, for log lines."""
    if isinstance(tenant, tuple):
        return "pod " + "/".join(str(p) for p in tenant)
    return f"source {tenant}" if tenant is not None else "the shipper's own jobs"


def pod_budget(max_names: int, configured: int | None, default: int) -> int:
    """One tenant's budget: as configured, else ``default`` but at most half the sink-wide cap.

    Half, so that with the defaults no single pod can fill the sink-wide cap on its own.
    """
    return configured if configured is not None else max(1, min(default, max_names // 2))


class NameGuard:
    """At most ``max_names`` distinct names per window, of which one tenant brings at most ``max_per_tenant``.

    A name already admitted in the window is free for everyone; a new one is charged to the tenant
    that brings it, so a pod that invents names runs out of its own budget long before the sink-wide
    cap, and the other pods' first-seen names still get in. Events without a tenant (None: the
    shipper's own jobs) meet the sink-wide cap alone. Callers map a refused name to their overflow.
    """

    def __init__(self, max_names: int, max_per_tenant: int | None = None, window_secs: float = WINDOW_SECS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_names = max_names
        self.max_per_tenant = max_per_tenant
        self.window_secs = window_secs
        self._clock = clock
        self._window_start = clock()
        self._seen: set[Hashable] = set()
        self._spent: dict[Hashable, int] = {}
        self._warned = False

    def __len__(self) -> int:
        return len(self._seen)

    def expired(self) -> bool:
        """True once the current window is over (call :meth:`reset` to open the next one)."""
        return self._clock() - self._window_start >= self.window_secs

    def reset(self) -> None:
        self._window_start = self._clock()
        self._seen.clear()
        self._spent.clear()
        self._warned = False

    def admit(self, name: Hashable, tenant: Hashable | None = None) -> str | None:
        """None when ``name`` may be used, else why not (sink-wide cap or the tenant's budget)."""
        if name in self._seen:
            return None
        if len(self._seen) >= self.max_names:
            return f"more than {self.max_names} distinct values this window"
        if tenant is not None and self.max_per_tenant is not None:
            spent = self._spent.get(tenant, 0)
            if spent >= self.max_per_tenant:
                return f"{describe_tenant(tenant)} brought {self.max_per_tenant} new values this window"
            self._spent[tenant] = spent + 1
        self._seen.add(name)
        return None

    def first_refusal(self) -> bool:
        """True the first time it is asked in a window: one warning per window, not one per event."""
        if self._warned:
            return False
        self._warned = True
        return True
