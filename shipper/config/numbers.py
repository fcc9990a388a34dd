"""Bounds every number in a config obeys, by the kind its key names.

Applied once to the validated model, so each component's options need no bound of their own
against ``.inf``, ``.nan`` or ``1e23`` (pydantic's ``gt=0`` lets ``.inf`` through, and a string
from ``${VAR}`` such as ``"inf"`` parses as a float):

- every number, even in free-form fields such as ``add_fields.fields``, is finite;
- ``*_secs`` at most one day (86400) and ``*_ms`` its equal: a longer timeout or interval is a typo;
- ``*_bytes`` at most 1 GiB, except a disk ``buffer``'s sizes at most 1 TiB;
- ``*_days`` at most 36500 (a century); other counts at most 1,000,000,000.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel

DAY_SECS = 86_400
GIB = 1 << 30
TIB = 1 << 40
MAX_DAYS = 36_500
MAX_COUNT = 1_000_000_000


def number_problems(model: BaseModel, path: str = "") -> list[tuple[str, str]]:
    """``(key path, message)`` for every number in ``model`` that is not finite or out of bounds."""
    problems: list[tuple[str, str]] = []
    for name in type(model).model_fields:
        _check(getattr(model, name), name, f"{path}.{name}" if path else name, problems, settings=True)
    return problems


def _check(value: Any, key: str, path: str, problems: list[tuple[str, str]], settings: bool) -> None:
    if isinstance(value, BaseModel):
        problems.extend(number_problems(value, path))
    elif isinstance(value, dict):
        for k, v in value.items():
            # Values of a mapping option (a component by name, a field to add) are not settings by key.
            _check(v, str(k), f"{path}.{k}", problems, settings=isinstance(v, BaseModel))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check(v, key, f"{path}[{i}]", problems, settings=isinstance(v, BaseModel))
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            problems.append((path, "must be a finite number"))
        elif settings:
            limit, what = _limit(key, path)
            if value > limit:
                problems.append((path, f"{value:g} is more than the most allowed, {what}"))


def _limit(key: str, path: str) -> tuple[float, str]:
    if key.endswith("_secs"):
        return DAY_SECS, "86400 (one day)"
    if key.endswith("_ms"):
        return DAY_SECS * 1000, "86400000 (one day)"
    if key.endswith("_bytes"):
        return (TIB, "1 TiB (1099511627776)") if ".buffer." in f".{path}" else (GIB, "1 GiB (1073741824)")
    if key.endswith("_days"):
        return MAX_DAYS, f"{MAX_DAYS} (a century)"
    return MAX_COUNT, f"{MAX_COUNT:,}"
