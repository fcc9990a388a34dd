"""Reading a config file: YAML, ``${VAR}`` / ``${VAR:-default}`` interpolation, pydantic validation."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from shipper.config.model import ShipperConfig
from shipper.errors import ConfigError

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def interpolate(text: str, env: Mapping[str, str], problems: list[tuple[str, str]]) -> str:
    """Replace ``${VAR}`` and ``${VAR:-default}``; ``$$`` is a literal ``$``. Unset vars are errors."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, default = m.group(1), m.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        problems.append((f"${{{name}}}", "environment variable is not set and has no default"))
        return ""

    return _VAR.sub(sub, text)


def _key_path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        else:
            # Discriminated unions add the tag (e.g. 'file') to the location; it is not a key.
            parts.append(("." if parts else "") + str(p))
    return "".join(parts)


def parse_config(text: str, source: str = "config", env: Mapping[str, str] | None = None) -> ShipperConfig:
    """Parse and validate config text; raises :class:`ConfigError` listing every problem."""
    problems: list[tuple[str, str]] = []
    text = interpolate(text, os.environ if env is None else env, problems)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([("<yaml>", str(exc))], source) from exc
    if problems:
        raise ConfigError(problems, source)
    if not isinstance(data, dict):
        raise ConfigError([("<root>", "expected a mapping of settings")], source)
    try:
        config = ShipperConfig.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = _without_union_tag(tuple(err["loc"]))
            problems.append((_key_path(loc) or "<root>", err["msg"]))
        raise ConfigError(problems, source) from None
    problems.extend(config.graph_problems())
    if problems:
        raise ConfigError(problems, source)
    return config


def _without_union_tag(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Discriminated unions put the chosen ``type`` after the component's name; it is not a key."""
    if len(loc) > 2 and loc[0] in ("sources", "transforms", "sinks") and loc[2] in _TAGS:
        return loc[:2] + loc[3:]
    return loc


_TAGS = {"file", "forward", "loki", "elasticsearch", "cloudwatch", "s3", "add_fields", "filter", "redact"}


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> ShipperConfig:
    """Read and validate the config file at ``path``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([("<file>", f"cannot read {p}: {exc.strerror}")], str(p)) from exc
    return parse_config(text, str(p), env)
