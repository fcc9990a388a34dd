"""The JSON Schema of a log record, shipped as ``schema.json`` beside this module."""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["schema"]


@cache
def _load() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("schema.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def schema() -> dict[str, Any]:
    """The record schema (JSON Schema draft 2020-12) as a fresh dict the caller may modify."""
    return copy.deepcopy(_load())
