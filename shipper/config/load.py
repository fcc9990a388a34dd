"""Reading a config file: YAML, ``${VAR}`` / ``${VAR:-default}`` interpolation, pydantic validation.

Every problem comes back at once as ``(key path, message)``; a message never holds a value taken
from the environment (it names the variable instead), so errors and reload logs leak no secret.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from shipper.config.checks import address_problems, raw_graph_problems
from shipper.config.interpolate import VARIABLE, Substitutions, interpolate
from shipper.config.model import COMPONENT_TAGS as _TAGS
from shipper.config.model import ShipperConfig
from shipper.config.numbers import number_problems
from shipper.config.yaml_text import read_yaml
from shipper.errors import ConfigError

__all__ = ["interpolate", "load_config", "load_config_checked", "parse_config", "parse_config_checked"]


def _key_path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        else:
            parts.append(("." if parts else "") + str(p))
    return "".join(parts)


def parse_config(text: str, source: str = "config", env: Mapping[str, str] | None = None, *,
                 placeholders: bool = False) -> ShipperConfig:
    """Parse and validate config text; raises :class:`ConfigError` listing every problem.

    ``placeholders`` (``validate --no-env``): an unset ``${VAR}`` stays as its text, and a value that
    is invalid only because it is such a placeholder is left out (the field takes its default).
    """
    return parse_config_checked(text, source, env, placeholders=placeholders)[0]


def parse_config_checked(text: str, source: str = "config", env: Mapping[str, str] | None = None, *,
                         placeholders: bool = False) -> tuple[ShipperConfig, Substitutions]:
    """:func:`parse_config`, also returning where variables were substituted or left as placeholders."""
    raw, problems = read_yaml(text, keep=VARIABLE)
    if problems:
        raise ConfigError(problems, source)
    data, subs = interpolate(raw, os.environ if env is None else env, placeholders=placeholders)
    if subs.problems:
        raise ConfigError(subs.problems, source)
    if not isinstance(data, dict):
        raise ConfigError([("<root>", "expected a mapping of settings")], source)
    config, problems = _validate(data, subs)
    if config is None:
        # The schema failed, but the names and inputs can often still be read: report both at once.
        problems += [p for p in raw_graph_problems(data) if p not in problems]
        raise ConfigError(_hidden(problems, subs), source)
    problems = number_problems(config) + config.graph_problems() + address_problems(config)
    if problems:
        raise ConfigError(_hidden(problems, subs), source)
    return config, subs


def _validate(data: dict[str, Any], subs: Substitutions) -> tuple[ShipperConfig | None, list[tuple[str, str]]]:
    """The model, or the schema's problems; placeholders that fail their field are dropped and it is tried again."""
    for _attempt in range(2):
        try:
            return ShipperConfig.model_validate(data), []
        except ValidationError as exc:
            errors = [(_without_union_tag(tuple(e["loc"])), e["msg"])
                      for e in exc.errors(include_input=False, include_url=False)]
        problems = [(_key_path(loc) or "<root>", msg) for loc, msg in errors if _key_path(loc) not in subs.placeholders]
        if problems or _attempt:
            return None, problems
        for loc, _msg in errors:
            _drop(data, loc)
    raise AssertionError("unreachable")  # pragma: no cover


def _drop(data: Any, loc: tuple[Any, ...]) -> None:
    try:
        for key in loc[:-1]:
            data = data[key]
    except (KeyError, IndexError, TypeError):
        return
    if isinstance(data, dict):
        data.pop(loc[-1], None)


def _hidden(problems: list[tuple[str, str]], subs: Substitutions) -> list[tuple[str, str]]:
    return [(path, subs.hide(path, msg)) for path, msg in problems]


def _without_union_tag(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Discriminated unions put the chosen ``type`` after the component's name; it is not a key."""
    if len(loc) > 2 and loc[0] in ("sources", "transforms", "sinks") and loc[2] in _TAGS:
        return loc[:2] + loc[3:]
    return loc




def load_config(path: str | Path, env: Mapping[str, str] | None = None, *, placeholders: bool = False) -> ShipperConfig:
    """Read and validate the config file at ``path`` (UTF-8 YAML)."""
    return load_config_checked(path, env, placeholders=placeholders)[0]


def load_config_checked(path: str | Path, env: Mapping[str, str] | None = None, *,
                        placeholders: bool = False) -> tuple[ShipperConfig, Substitutions]:
    """:func:`load_config`, also returning where variables were substituted or left as placeholders."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ConfigError([("<file>", f"cannot read {p}: {exc.strerror}")], str(p)) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError([("<file>", f"{p} is not UTF-8 text (byte 0x{data[exc.start]:02x} at line {line})")],
                          str(p)) from None
    return parse_config_checked(text, str(p), env, placeholders=placeholders)
