"""What ``archive run`` and ``archive verify --backend`` need from a backend."""

from __future__ import annotations

import abc
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]+")


@dataclass(frozen=True, slots=True)
class Unit:
    """A part of a day exported on its own: one Loki stream, one index, one log group.

    ``name`` is a path segment under the day's directory; ``query`` is recorded in the manifest.
    """

    name: str
    query: dict[str, Any] = field(default_factory=dict)


def unit_name(kind: str, text: str, max_len: int = 80) -> str:
    """A readable, path-safe, unique name: ``kind=<sanitised text>`` plus a short hash if changed."""
    clean = _UNSAFE.sub("_", text).strip("_.")[:max_len]
    if clean == text:
        return f"{kind}={clean}"
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return f"{kind}={clean}-{digest}" if clean else f"{kind}={digest}"


class Exporter(abc.ABC):
    """Reads a day from one backend. Lines come out in a deterministic order for an unchanged day."""

    backend: str
    #: True when the backend deletes data by age on its own (a day past retention may be partial).
    expires_by_age: bool = True

    @abc.abstractmethod
    def source(self) -> dict[str, Any]:
        """Where the day comes from, for the manifest (backend, endpoint, tenant, ...)."""

    @abc.abstractmethod
    def units(self, day: date) -> list[Unit]:
        """The day's units, sorted by name."""

    @abc.abstractmethod
    def lines(self, unit: Unit, day: date) -> Iterator[tuple[int, bytes]]:
        """``(ts_ns, archived line)`` of every event of ``unit`` on ``day``."""

    @abc.abstractmethod
    def counts(self, day: date) -> dict[str, int]:
        """The backend's own event count per unit name for ``day`` (to check an archive against)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients."""
