"""Presentation of the jobs commands: JSON or text output, progress bars and exit codes.

Exit codes: 0 done (or nothing to do), 1 drift, a failed day, or a verify problem, 2 bad usage,
3 (retention commands) a backend that could not be reached or answered with an error.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar, cast

import click
import orjson

from shipper import __version__
from shipper.config import ConfigError
from shipper.errors import JobError
from shipper.jobs.archive import DayResult
from shipper.jobs.verify import VerifyReport

F = TypeVar("F", bound=Callable[..., Any])
EXIT_UNREACHABLE = 3


class Failed(Exception):
    """A command finished and wants exit code 1 (its output already says why)."""


class Unreachable(Exception):
    """A retention command could not ask every backend and wants exit code 3 (its output says which)."""


def job_command(fn: F) -> F:
    """Turn the jobs' errors into a message and an exit code instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Failed:
            sys.exit(1)
        except Unreachable:
            sys.exit(EXIT_UNREACHABLE)
        except ConfigError as exc:
            click.echo(str(exc), err=True)
            sys.exit(2)
        except (JobError, ValueError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2 if isinstance(exc, ValueError) else 1)

    return cast(F, wrapper)


def emit(as_json: bool, doc: dict[str, Any], lines: list[str]) -> None:
    """Print ``doc`` as indented JSON with ``--json``, else the text ``lines``."""
    if as_json:
        click.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2, default=str).decode())
    else:
        for line in lines:
            click.echo(line)


class ProgressBar:
    """A click progress bar on stderr when it is a terminal; nothing otherwise."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self._bar: Any = None

    def start(self, label: str, total: int) -> None:
        if self.enabled and total:
            self._bar = click.progressbar(length=total, label=label, file=sys.stderr, show_pos=True,
                                          item_show_func=lambda item: item)
            self._bar.__enter__()

    def unit_done(self, events: int) -> None:
        if self._bar is not None:
            self._bar.update(1, f"{events} events")

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None


def day_line(r: DayResult) -> str:
    """One archived (or sealed, or failed) day as a line, its problems indented below."""
    text = (f"{r.day} {r.status}: {r.events} events, {r.objects} objects, {r.bytes / 1048576:.2f} MiB "
            f"({r.uncompressed_bytes / 1048576:.2f} MiB uncompressed) in {r.seconds:.1f}s")
    if r.reused:
        text += f", {r.reused} objects already there"
    if r.version > 1:
        text += f", version {r.version}"
    if r.changed_units:
        text += f", {r.late_events} late events in {len(r.changed_units)} unit(s)"
    if r.rearchive_pending:
        text += ", archive again pending"
    if r.error:
        text += f" — {r.error}"
    for p in r.problems:
        text += f"\n    {p}"
    return text


def summary(command: str, results: list[DayResult], **extra: Any) -> dict[str, Any]:
    """The JSON summary of a run over days, with its throughput."""
    done = [r for r in results if r.status in ("archived", "sealed")]
    seconds = sum(r.seconds for r in done)
    events = sum(r.events for r in done)
    raw = sum(r.uncompressed_bytes for r in done)
    return {
        "command": command, "version": __version__, **extra,
        "ok": all(r.status != "failed" for r in results),
        "days": [r.to_json() for r in results],
        "events": events, "bytes": sum(r.bytes for r in done), "uncompressed_bytes": raw,
        "seconds": round(seconds, 3),
        "events_per_second": round(events / seconds, 1) if seconds else None,
        "mib_per_second": round(raw / seconds / 1048576, 2) if seconds else None,
    }


def verify_lines(report: VerifyReport) -> list[str]:
    """A verify report as text: the verdict line, then its problems and warnings."""
    m = report.manifest
    head = f"{report.day} {'OK' if report.ok else 'FAILED'}: {report.url}"
    if m is not None:
        origin = f"export of {m.backend}" if m.route == "export" else "archived at ingest"
        head += (f" ({origin}{f', version {m.version}' if m.version > 1 else ''}, {m.events} events in "
                 f"{len(m.objects)} objects, "
                 f"{report.objects_checked} checked{' deeply' if report.deep else ''})")
    lines = [head]
    lines += [f"  problem: {p}" for p in report.problems]
    lines += [f"  warning: {w}" for w in report.warnings]
    if report.backend_counts is not None:
        lines.append(f"  backend: {sum(report.backend_counts.values())} events")
    return lines
