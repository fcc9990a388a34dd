"""Transforms: functions over a batch of events, wired between sources and sinks by ``inputs``."""

from __future__ import annotations

from collections.abc import Callable

from shipper.event import Event
from shipper.templates import render
from shipper.transforms.config import AddFieldsConfig, FilterConfig, RedactConfig

Transform = Callable[[list[Event]], list[Event]]

#: Severity ranks of level names for ``filter.min_level`` (unknown levels rank as INFO).
LEVEL_RANKS = {"DEBUG": 10, "INFO": 20, "WARN": 30, "WARNING": 30, "ERROR": 40, "CRITICAL": 50, "FATAL": 50}


def build_transform(config: AddFieldsConfig | FilterConfig | RedactConfig) -> Transform:
    """The batch function for one transform's config."""
    if isinstance(config, AddFieldsConfig):
        return _add_fields(config)
    if isinstance(config, FilterConfig):
        return _filter(config)
    return _redact(config)


def _add_fields(cfg: AddFieldsConfig) -> Transform:
    def apply(events: list[Event]) -> list[Event]:
        for e in events:
            for k, v in cfg.fields.items():
                if cfg.overwrite or k not in e.record:
                    e.record[k] = render(v, e) if isinstance(v, str) else v
                    e.derived = False  # the record is no longer what the raw line parses to
        return events

    return apply


def _filter(cfg: FilterConfig) -> Transform:
    floor = LEVEL_RANKS[cfg.min_level] if cfg.min_level else None

    def keep(e: Event) -> bool:
        if floor is not None:
            level = str(e.record.get("level", "INFO")).upper()
            if LEVEL_RANKS.get(level, 20) < floor:
                return False
        return all(str(e.get(path)) == want for path, want in cfg.match.items())

    def apply(events: list[Event]) -> list[Event]:
        return [e for e in events if keep(e)]

    return apply


def _redact(cfg: RedactConfig) -> Transform:
    from shipper.transforms.redact import Redact

    return Redact(cfg.keys)
