"""Cost of one log record: logging_config's formatter against python-json-logger and structlog.

Every variant writes the same fields (timestamp with milliseconds and ``Z``, level, logger,
message, request_id/user_id/company_id from context, service/environment/version, three extra
fields) to /dev/null: the stdlib variants through a real ``logging.StreamHandler``, structlog
through its ``WriteLogger``. The typical call is
``log.info("Company created", extra={...3 fields})`` with the three ids bound.

    python bench/logging_overhead.py --records 20000 --rounds 7 [--show]

Time is the process's CPU time. Rounds are interleaved so that load from other processes hits
every variant alike; the table reports the best round (the least disturbed) and the median.
"format()" is the formatter alone, on records made beforehand.
"""

from __future__ import annotations

import argparse
import contextvars
import io
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable, MutableMapping
from typing import Any

import orjson
import structlog
from pythonjsonlogger.json import JsonFormatter as PlainJsonFormatter
from pythonjsonlogger.orjson import OrjsonFormatter

import logging_config

SERVICE = {"service": "ecvi-api", "environment": "production", "version": "1.4.2"}
IDS = {
    "request_id": "9f1c2b7e4a6d4c1e8b3f2a1d0c9e8f7a",
    "user_id": "user-123",
    "company_id": "123e4567-e89b-12d3-a456-426614174000",
}
EXTRA = {"company_name": "Acme GmbH", "plan": "pro", "seats": 12}
MESSAGE = "Company created"
LOGGER = "app.api.v1.companies"

#: CPU time of this process (user + system, so the write to /dev/null counts): on a shared
#: machine, wall time also counts the time other processes hold the CPU.
CLOCK = time.process_time


class Variant:
    """One way of producing the line: a callable doing the typical call, and optionally a formatter."""

    def __init__(self, name: str, call: Callable[[], None], formatter: logging.Formatter | None = None) -> None:
        self.name = name
        self.call = call
        self.formatter = formatter
        self.rounds: list[float] = []
        self.format_only: float | None = None


Stream = Callable[[], Any]


def _devnull() -> Any:
    return open(os.devnull, "w", encoding="utf-8")  # open for the whole run


def _stdlib_variant(
    name: str, formatter: logging.Formatter, stream: Stream, context_filter: logging.Filter | None = None
) -> Variant:
    logger = logging.Logger(LOGGER, logging.INFO)  # one private logger per variant, same name in lines
    logger.propagate = False
    handler = logging.StreamHandler(stream())
    handler.setFormatter(formatter)
    if context_filter is not None:
        handler.addFilter(context_filter)
    logger.addHandler(handler)

    def call() -> None:
        logger.info(MESSAGE, extra=EXTRA)

    return Variant(name, call, formatter)


# -- python-json-logger as one would configure it by hand for the same fields ----------------

_plain_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("bench_context", default=None)


class _ContextFilter(logging.Filter):
    """Copies contextvars into the record, the usual way to get request ids into stdlib logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.__dict__.update(_plain_context.get() or {})
        return True


def _same_fields(formatter_class: type[Any]) -> logging.Formatter:
    formatter: logging.Formatter = formatter_class(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "timestamp", "levelname": "level", "name": "logger"},
        static_fields=SERVICE,
    )
    formatter.converter = time.gmtime
    formatter.default_time_format = "%Y-%m-%dT%H:%M:%S"
    formatter.default_msec_format = "%s.%03dZ"
    return formatter


class _FloorFormatter(logging.Formatter):
    """Does nothing: what remains is the cost of logging itself and the handler's write."""

    def format(self, record: logging.LogRecord) -> str:
        return "{}"


# -- structlog, emitting the same fields ------------------------------------------------------


def _timestamp_ms(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    now = time.time()
    event["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
    return event


def _structlog_variant(name: str, renderer: Any, stream: Stream) -> Variant:
    def level_upper(_: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        event["level"] = method.upper()
        return event

    logger = structlog.wrap_logger(
        structlog.WriteLogger(stream()),
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        processors=[
            structlog.contextvars.merge_contextvars,
            level_upper,
            _timestamp_ms,
            structlog.processors.EventRenamer("message"),
            renderer,
        ],
        cache_logger_on_first_use=True,
    ).bind(logger=LOGGER, **SERVICE)

    def call() -> None:
        logger.info(MESSAGE, **EXTRA)

    return Variant(name, call)


def _orjson_text(value: Any, **_: Any) -> str:
    return orjson.dumps(value).decode()


def build_variants(stream: Stream = _devnull) -> list[Variant]:
    logging_config.bind(**IDS)
    _plain_context.set(dict(IDS))
    structlog.contextvars.bind_contextvars(**IDS)
    context = _ContextFilter()
    return [
        _stdlib_variant("logging_config.JsonFormatter (ours)", logging_config.JsonFormatter(**SERVICE), stream),
        _stdlib_variant("python-json-logger JsonFormatter", _same_fields(PlainJsonFormatter), stream, context),
        _stdlib_variant("python-json-logger OrjsonFormatter", _same_fields(OrjsonFormatter), stream, context),
        _structlog_variant(
            "structlog JSONRenderer (orjson)", structlog.processors.JSONRenderer(serializer=_orjson_text), stream
        ),
        _structlog_variant("structlog JSONRenderer (json)", structlog.processors.JSONRenderer(), stream),
        _stdlib_variant("floor: logging + StreamHandler, no-op formatter", _FloorFormatter(), stream, context),
    ]


def _time_calls(call: Callable[[], None], records: int) -> float:
    started = CLOCK()
    for _ in range(records):
        call()
    return (CLOCK() - started) / records * 1e6


def _time_format_only(variant: Variant, records: int) -> float | None:
    """The formatter alone, once on each of ``records`` fresh records (built before timing)."""
    if variant.formatter is None:
        return None
    make = logging.getLogger(LOGGER).makeRecord
    fmt = variant.formatter.format
    best = float("inf")
    for _ in range(3):
        prepared = [make(LOGGER, logging.INFO, __file__, 1, MESSAGE, (), None, extra=EXTRA) for _ in range(records)]
        if not isinstance(variant.formatter, logging_config.JsonFormatter):
            for record in prepared:
                record.__dict__.update(_plain_context.get() or {})  # what the context filter adds
        started = CLOCK()
        for record in prepared:
            fmt(record)
        best = min(best, (CLOCK() - started) / records * 1e6)
    return best


def show_lines() -> None:
    """Print the line each variant writes, to check they carry the same fields."""
    streams: list[io.StringIO] = []

    def stream() -> io.StringIO:
        streams.append(io.StringIO())
        return streams[-1]

    for variant in build_variants(stream):
        before = len(streams)
        variant.call()
        written = "".join(buffer.getvalue() for buffer in streams[:before])
        print(f"{variant.name}:\n  {written.strip().splitlines()[-1]}")
        for buffer in streams:
            buffer.seek(0)
            buffer.truncate()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=20_000, help="records per variant per round (default 20000)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument("--show", action="store_true", help="print a sample line of each variant and exit")
    args = parser.parse_args(argv)
    if args.show:
        show_lines()
        return

    variants = build_variants()
    for variant in variants:  # warm caches, first-use code paths and the allocator
        _time_calls(variant.call, min(2_000, args.records))
    for round_number in range(args.rounds):
        rotation = round_number % len(variants)
        for variant in variants[rotation:] + variants[:rotation]:
            variant.rounds.append(_time_calls(variant.call, args.records))
    for variant in variants:
        variant.format_only = _time_format_only(variant, args.records)

    baseline = next(v for v in variants if v.name == "python-json-logger JsonFormatter")
    base_best, base_format = min(baseline.rounds), baseline.format_only
    print(
        f"python {sys.version.split()[0]}, nproc {os.cpu_count()}, "
        f"{args.records} records x {args.rounds} rounds, µs per record (best round / median)"
    )
    header = f"{'variant':<50} {'best':>7} {'median':>7} {'vs pjl':>7} {'format()':>9} {'vs pjl':>7}"
    print(header)
    print("-" * len(header))
    for variant in variants:
        best, median = min(variant.rounds), statistics.median(variant.rounds)
        format_only = f"{variant.format_only:9.2f}" if variant.format_only is not None else f"{'-':>9}"
        format_ratio = (
            f"{variant.format_only / base_format:7.2f}"
            if variant.format_only is not None and base_format
            else f"{'-':>7}"
        )
        print(f"{variant.name:<50} {best:7.2f} {median:7.2f} {best / base_best:7.2f} {format_only} {format_ratio}")


if __name__ == "__main__":
    main()
