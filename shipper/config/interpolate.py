"""``${VAR}`` / ``${VAR:-default}`` interpolation into parsed string values, never into YAML text.

Substituting before parsing let a value rewrite the file: ``#`` cut it short, ``null`` became
None, a newline added whole sinks, a comment's ``${VAR}`` had to be set, and a YAML error quoted
the secret. Here a value lands in the one string that named it and stays a string (pydantic's
lax parsing still turns ``port: ${PORT}`` into a number). ``$$`` is a literal ``$``.

With ``placeholders=True`` (``validate --no-env``) a variable without a value is left as its
``${NAME}`` text and its path recorded, so a file's structure can be checked where its secrets are not set.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}\n]*))?\}")
_SHORT = 4


@dataclass
class Substitutions:
    """Where values came from the environment, so an error about them names the variable instead."""

    by_path: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # path -> [(name, value)]
    problems: list[tuple[str, str]] = field(default_factory=list)
    placeholders: dict[str, list[str]] = field(default_factory=dict)  # path -> names left as ${NAME}
    keep_unset: bool = False  # leave an unset variable as ${NAME} (a placeholder) instead of a problem

    def hide(self, path: str, message: str) -> str:
        """``message`` about ``path`` with every substituted value there replaced by its ``${NAME}``."""
        used = [nv for p, nvs in self.by_path.items() if _related(p, path) for nv in nvs]
        if not used:
            return message
        # Longest first, so a value that contains another is replaced whole.
        for name, value in sorted(used, key=lambda nv: -len(nv[1])):
            forms = {value, repr(value)[1:-1], str(value.encode("unicode_escape"))[2:-1]}
            if len(value) < _SHORT:  # as a bare word it would garble the text ("be a valid"): only quoted
                forms = {q + f + q for f in forms for q in "'\""}
            for form in forms:
                if form:
                    message = message.replace(form, f"${{{name}}}")
        names = ", ".join(sorted({f"${{{n}}}" for n, _v in used}))
        return message if all(f"${{{n}}}" in message for n, _v in used) else f"{message} (value from {names})"


def interpolate(data: Any, env: Mapping[str, str], path: str = "", subs: Substitutions | None = None,
                _done: dict[int, Any] | None = None, *, placeholders: bool = False) -> tuple[Any, Substitutions]:
    """Return ``data`` with ``${VAR}`` replaced in every string value (keys are left alone).

    ``placeholders``: an unset variable without a default stays ``${NAME}`` instead of being a problem.
    """
    subs = Substitutions(keep_unset=placeholders) if subs is None else subs
    done: dict[int, Any] = {} if _done is None else _done
    if isinstance(data, str):
        return _substitute(data, env, path, subs), subs
    if id(data) in done:  # a YAML alias: one result, so anchors cannot multiply the work
        return done[id(data)], subs
    if isinstance(data, dict):
        out: dict[Any, Any] = {}
        done[id(data)] = out
        for k, v in data.items():
            out[k] = interpolate(v, env, f"{path}.{k}" if path else str(k), subs, done)[0]
        return out, subs
    if isinstance(data, list):
        items: list[Any] = []
        done[id(data)] = items
        items.extend(interpolate(v, env, f"{path}[{i}]", subs, done)[0] for i, v in enumerate(data))
        return items, subs
    return data, subs


def _substitute(text: str, env: Mapping[str, str], path: str, subs: Substitutions) -> str:
    if "$" not in text:
        return text

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, default = m.group(1), m.group(2)
        if name in env:
            subs.by_path.setdefault(path, []).append((name, env[name]))
            return env[name]
        if default is not None:
            return default
        if subs.keep_unset:
            subs.placeholders.setdefault(path or "<root>", []).append(name)
            return m.group(0)
        subs.problems.append((path or "<root>", f"${{{name}}}: environment variable is not set and has no default"))
        return ""

    return VARIABLE.sub(sub, text)


def _related(a: str, b: str) -> bool:
    """One path is the other or lies inside it (a model's error may name the parent of a value)."""
    return a == b or _inside(a, b) or _inside(b, a)


def _inside(child: str, parent: str) -> bool:
    return parent == "" or child.startswith(parent + ".") or child.startswith(parent + "[")
