"""Trace and span ids of the active OpenTelemetry span, when OpenTelemetry is installed.

OpenTelemetry is optional: it is imported on first use, and its absence costs one call per
record. :func:`set_span_source` is the seam tests (and unusual tracers) use to supply ids.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["SpanSource", "current_span_ids", "set_span_source"]

#: Returns ``(trace_id, span_id)`` as lower-case hex, or None when no span is recording.
SpanSource = Callable[[], "tuple[str, str] | None"]


def _no_span() -> tuple[str, str] | None:
    return None


def _load_opentelemetry() -> SpanSource:
    try:
        from opentelemetry import trace
    except ImportError:
        return _no_span

    get_current_span, no_span = trace.get_current_span, trace.INVALID_SPAN

    def from_opentelemetry() -> tuple[str, str] | None:
        span = get_current_span()
        if span is no_span:  # the common case outside traced code, answered without more calls
            return None
        span_context = span.get_span_context()
        if not span_context.is_valid:
            return None
        return format(span_context.trace_id, "032x"), format(span_context.span_id, "016x")

    return from_opentelemetry


def _resolve_then_call() -> tuple[str, str] | None:
    global _source
    _source = _load_opentelemetry()
    return _source()


_source: SpanSource = _resolve_then_call


def current_span_ids() -> tuple[str, str] | None:
    """``(trace_id, span_id)`` of the active span, or None."""
    return _source()


def set_span_source(source: SpanSource | None) -> None:
    """Use ``source`` for span ids; None goes back to OpenTelemetry (looked up again lazily)."""
    global _source
    _source = source if source is not None else _resolve_then_call
