"""Loki retention: the compactor and limits settings, generated, merged into a config, and checked.

Loki reads retention from its config file only (``compactor.retention_enabled``,
``limits_config.retention_period`` and ``retention_stream`` overrides; per-tenant overrides in
the runtime config). So ``apply`` writes the settings into a config file (or prints them), and
``check`` reads what a running Loki really uses from ``GET /config`` (YAML) and, when served,
``GET /runtime_config``.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from shipper.errors import BackendError, JobError
from shipper.jobs.http import JobHttp
from shipper.jobs.retention.report import Finding

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|y|w|d|h|m|s)")
_UNITS = {
    "y": timedelta(days=365), "w": timedelta(weeks=1), "d": timedelta(days=1), "h": timedelta(hours=1),
    "m": timedelta(minutes=1), "s": timedelta(seconds=1), "ms": timedelta(milliseconds=1),
    "us": timedelta(microseconds=1), "µs": timedelta(microseconds=1), "ns": timedelta(0),
}
_STREAM_SPEC = re.compile(r"^\s*(\{.*\})\s*=\s*(\d+)d\s*(?::\s*(\d+))?\s*$")


def parse_duration(text: str | int) -> timedelta:
    """A Loki/Prometheus duration (``30d``, ``720h``, ``2h0m0s``, ``1w``, ``0s``, ``0``)."""
    s = str(text).strip()
    if s in ("0", ""):
        return timedelta(0)
    pos, total = 0, timedelta(0)
    for m in _DURATION_PART.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s):
        raise ValueError(f"{text!r} is not a duration (e.g. 720h or 30d)")
    return total


def hours(days: int) -> str:
    """``720h`` for 30 days (the form Loki's documentation uses)."""
    return f"{days * 24}h"


@dataclass(frozen=True, slots=True)
class StreamRetention:
    """A ``retention_stream`` override: streams matching ``selector`` are kept ``days`` days."""

    selector: str
    days: int
    priority: int = 1

    @classmethod
    def parse(cls, spec: str) -> StreamRetention:
        """``{level="debug"}=7d`` or ``{level="debug"}=7d:2`` (priority 2)."""
        m = _STREAM_SPEC.match(spec)
        if not m:
            raise ValueError(f"{spec!r}: expected SELECTOR=DAYSd[:PRIORITY], e.g. '{{level=\"debug\"}}=7d'")
        return cls(m.group(1), int(m.group(2)), int(m.group(3) or 1))

    def to_config(self) -> dict[str, Any]:
        return {"selector": self.selector, "priority": self.priority, "period": hours(self.days)}


def retention_settings(days: int, streams: list[StreamRetention] | None = None,
                       delete_request_store: str = "filesystem") -> dict[str, Any]:
    """The config fragment that makes Loki delete what is older than ``days`` (its compactor does it).

    ``delete_request_store`` must name the object store Loki uses (required once retention is on).
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    limits: dict[str, Any] = {"retention_period": hours(days)}
    if streams:
        limits["retention_stream"] = [s.to_config() for s in streams]
    return {
        "compactor": {"retention_enabled": True, "delete_request_store": delete_request_store,
                      "retention_delete_delay": "2h"},
        "limits_config": limits,
    }


def merge_settings(config: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """``config`` with ``settings`` applied; an existing ``delete_request_store`` is kept."""
    out = copy.deepcopy(config)
    for section, values in settings.items():
        target = out.setdefault(section, {})
        if not isinstance(target, dict):
            raise ValueError(f"{section} in the Loki config is not a mapping")
        for key, value in values.items():
            if key == "delete_request_store" and target.get(key):
                continue
            target[key] = copy.deepcopy(value)
    if "retention_stream" not in settings.get("limits_config", {}):
        out.get("limits_config", {}).pop("retention_stream", None)
    return out


def check_config(config: dict[str, Any], days: int, streams: list[StreamRetention] | None = None,
                 target: str = "config") -> list[Finding]:
    """Drift between a Loki config (file or ``/config``) and the policy."""
    compactor = config.get("compactor") or {}
    limits = config.get("limits_config") or {}
    out: list[Finding] = []

    def add(setting: str, expected: str, actual: Any, ok: bool, note: str = "") -> None:
        out.append(Finding("loki", target, setting, expected, str(actual), ok, note=note))

    enabled = compactor.get("retention_enabled")
    add("compactor.retention_enabled", "true", str(enabled).lower(), enabled is True,
        "" if enabled is True else "without it the compactor deletes nothing")
    store = compactor.get("delete_request_store") or ""
    add("compactor.delete_request_store", "<your object store>", store or "(unset)", bool(store),
        "" if store else "Loki refuses to start with retention enabled and no delete_request_store")
    period = limits.get("retention_period", "0s")
    try:
        actual = parse_duration(period)
    except ValueError:
        actual = None
    add("limits_config.retention_period", hours(days), period, actual == timedelta(days=days),
        "0 keeps logs forever" if actual == timedelta(0) else "")
    want = {(s.selector, timedelta(days=s.days)) for s in streams or []}
    have: set[tuple[str, timedelta | None]] = set()
    for item in limits.get("retention_stream") or []:
        try:
            p: timedelta | None = parse_duration(item.get("period", ""))
        except ValueError:
            p = None
        have.add((str(item.get("selector")), p))
    for selector, p in sorted(have - want, key=str):
        add(f"limits_config.retention_stream[{selector}]", "(not in the policy)", p, False,
            "an override the policy does not list (pass it with --stream-retention to accept it)")
    for selector, p in sorted(want - have, key=str):
        add(f"limits_config.retention_stream[{selector}]", str(p), "(missing)", False)
    return out


def check_runtime_overrides(runtime: dict[str, Any], days: int, target: str = "runtime_config") -> list[Finding]:
    """Per-tenant ``retention_period`` overrides that differ from the policy."""
    out = []
    for tenant, limits in sorted((runtime.get("overrides") or {}).items()):
        if not isinstance(limits, dict) or "retention_period" not in limits:
            continue
        period = limits["retention_period"]
        ok = parse_duration(period) == timedelta(days=days)
        out.append(Finding("loki", target, f"overrides.{tenant}.retention_period", hours(days), str(period), ok))
    return out


def fetch_effective_config(http: JobHttp) -> dict[str, Any]:
    """What a running Loki uses (``GET /config``, YAML)."""
    resp = http.request("GET", "/config")
    try:
        data = yaml.safe_load(resp.text)
    except yaml.YAMLError as exc:
        raise BackendError(f"Loki at {http.base_url}: /config is not YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise BackendError(f"Loki at {http.base_url}: /config is not a mapping")
    return data


def fetch_runtime_config(http: JobHttp) -> dict[str, Any] | None:
    """The runtime config (per-tenant overrides), None when this Loki serves none."""
    resp = http.request("GET", "/runtime_config", ok=(200, 404))
    if resp.status_code == 404:
        return None
    data = yaml.safe_load(resp.text)
    return data if isinstance(data, dict) else None


def check_running(http: JobHttp, days: int, streams: list[StreamRetention] | None = None) -> list[Finding]:
    target = f"{http.base_url}/config"
    out = check_config(fetch_effective_config(http), days, streams, target)
    runtime = fetch_runtime_config(http)
    if runtime:
        out += check_runtime_overrides(runtime, days, f"{http.base_url}/runtime_config")
    return out


def read_config_file(path: Path) -> dict[str, Any]:
    """The Loki config at ``path``; ``ValueError`` (one line, a usage error) when the file cannot be read."""
    try:
        current = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ValueError(f"--loki-config: cannot read {path}: {exc.strerror}") from None
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"--loki-config: {path} is not UTF-8 YAML ({type(exc).__name__})") from None
    if not isinstance(current, dict):
        raise JobError(f"{path} is not a YAML mapping")
    return current


def apply_to_file(path: Path, days: int, streams: list[StreamRetention], *, dry_run: bool) -> list[Finding]:
    """Merge the retention settings into the Loki config at ``path`` (keeping a ``.bak`` of it).

    Returns the findings of the file before the change, each marked with what was (or would be) done.
    """
    current = read_config_file(path)
    before = check_config(current, days, streams, str(path))
    merged = merge_settings(current, retention_settings(days, streams))
    if merged != current and not dry_run:
        backup = path.with_name(path.name + ".bak")
        backup.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
        path.write_text(yaml.safe_dump(merged, sort_keys=False), encoding="utf-8")
    for f in before:
        if not f.ok:
            f.ok = True
            f.action = "would set" if dry_run else "set (restart Loki)"
        else:
            f.action = "unchanged"
    return before
