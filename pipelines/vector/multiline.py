"""Multiline grouping of container logs (``cri``/``docker``) as Vector transforms after the parse step.

The shipper groups a container's messages per file and stream, after the runtime's partial lines are
joined, and never merges a message that is a JSON object (``shipper/sources/file/multiline.py``).
Vector's file source ``multiline`` option sees the runtime's whole line (its timestamp first) and
both streams at once, so the grouping is rendered after the parse, where ``.message`` is the payload::

    <name>_parse -> <name>_multiline (route) --text--> <name>_group (reduce) -> <name>_grouped (remap) -> next
                                             `--_unmatched (JSON objects, untouched) ----------------------> next

The parse step marks text messages with ``.ecvi_multiline`` (file, stream, id); the reduce groups by
file and stream; the remap after it removes the mark and puts back the metadata a reduce drops.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines import vrl
from pipelines.vector.samples import grouped_test
from shipper.sources.file.config import MultilineConfig

if TYPE_CHECKING:
    from pipelines.vector.render import Renderer

# The default rules of the shipper's LineGrouper (Python tracebacks), without its memory of an open
# traceback: a VRL condition sees one event at a time. A line matching either pattern continues the
# event before it; the exception line is therefore known by its name's ending alone.
TRACEBACK_CONTINUATION = (
    r"^(?:\s|Traceback \(most recent call last\):|During handling of the above exception"
    r"|The above exception was the direct cause|\s*\^+\s*$)"
)
EXCEPTION_LINE = r"^[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning|Fault)(?:: .*)?$"
_MESSAGE = 'string(.message) ?? ""'


def starts_when(start_pattern: str | None) -> str:
    """The reduce's ``starts_when`` condition: true for a message that starts a new event."""
    if start_pattern:
        return f"match({_MESSAGE}, {vrl.regex(start_pattern)})\n"
    return "\n".join([
        "# Python tracebacks: a line starts an event unless it continues one.",
        f"line = {_MESSAGE}",
        f"!match(line, {vrl.regex(TRACEBACK_CONTINUATION)}) &&",
        f"  !match(line, {vrl.regex(EXCEPTION_LINE)})",
    ]) + "\n"


def restore_program(source_name: str) -> str:
    """The remap after the reduce: the mark removed, the raw line, source and id put back in metadata
    (a reduce keeps none of its events' metadata, vectordotdev/vector#18219)."""
    return "\n".join([
        "group = object(del(.ecvi_multiline)) ?? {}",
        "%ecvi_raw = string(.message) ?? \"\"",
        f"%ecvi_source = {vrl.string(source_name)}",
        "# The first line's id, as the shipper's event is named after its first line.",
        "%ecvi_id = string(group.id) ?? \"\"",
    ]) + "\n"


def flush_period_ms(timeout_ms: int) -> int:
    """How often the reduce looks for expired groups: a quarter of the timeout (at most 1 s, Vector's
    default), so a group is complete at most 25 % after ``timeout_ms``, like the shipper's polling."""
    return max(10, min(1000, timeout_ms // 4))


def render_grouping(r: Renderer, name: str, ml: MultilineConfig) -> None:
    """Add the route, reduce and remap after source ``name``'s current output; they become its output."""
    route, reduce, grouped = f"{name}_multiline", f"{name}_group", f"{name}_grouped"
    r.transforms[route] = {
        "type": "route",
        "inputs": r.outputs[name],
        "route": {"text": {"type": "vrl", "source": "exists(.ecvi_multiline)"}},
    }
    r.transforms[reduce] = {
        "type": "reduce",
        "inputs": [f"{route}.text"],
        "group_by": ["ecvi_multiline.file", "ecvi_multiline.stream"],
        "starts_when": {"type": "vrl", "source": starts_when(ml.start_pattern)},
        "merge_strategies": {"message": "concat_newline", "timestamp": "discard", "kubernetes": "discard",
                             "ecvi_multiline": "discard"},
        "expire_after_ms": ml.timeout_ms,
        "flush_period_ms": flush_period_ms(ml.timeout_ms),
        "max_events": ml.max_lines,
    }
    r.transforms[grouped] = {"type": "remap", "inputs": [reduce], "source": restore_program(name)}
    if r.opt.with_tests:
        r.tests.append(grouped_test(grouped))
    r.outputs[name] = [grouped, f"{route}._unmatched"]
    r.note(f"sources.{name}.multiline: grouped after the parse by the reduce {reduce} (per file and stream; "
           "JSON objects go around it). A group is not cut at max_line_bytes (the reduce cannot truncate). "
           "A JSON message does not end its stream's group, so text on both sides of it can join one event")
    if ml.start_pattern:
        r.note(f"sources.{name}.multiline.start_pattern: matched by Vector's regex engine (no lookaround or "
               "backreferences)")
    else:
        r.note(f"sources.{name}.multiline: the traceback rule cannot remember an open traceback: a line "
               "named like an exception (ending in Error, Exception, Exit, Interrupt, Warning or Fault) "
               "continues the event before it even with no traceback, and a traceback's last line with another "
               "name (StopIteration, mod.Custom: x) starts a new event")
