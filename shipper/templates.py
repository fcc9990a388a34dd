"""``{{ field.path }}`` templates over an event's record and metadata (labels, streams, indices)."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from shipper.event import Event

_FIELD = re.compile(r"\{\{\s*([A-Za-z0-9_@.\-]+)\s*\}\}")


@lru_cache(maxsize=1024)
def _compile(template: str) -> tuple[list[str], list[str]]:
    """Split into literal parts and field paths (literals has one more element than fields)."""
    literals: list[str] = []
    fields: list[str] = []
    pos = 0
    for m in _FIELD.finditer(template):
        literals.append(template[pos : m.start()])
        fields.append(m.group(1))
        pos = m.end()
    literals.append(template[pos:])
    return literals, fields


def is_template(text: str) -> bool:
    return bool(_FIELD.search(text))


def render(template: str, event: Event, missing: str = "") -> str:
    """Fill in each ``{{ path }}`` from the record, then the metadata; ``missing`` when absent."""
    literals, fields = _compile(template)
    if not fields:
        return template
    out = [literals[0]]
    for i, path in enumerate(fields):
        v: Any = event.get(path)
        out.append(missing if v is None else str(v))
        out.append(literals[i + 1])
    return "".join(out)
