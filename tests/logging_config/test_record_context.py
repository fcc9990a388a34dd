"""The bound context on every LogRecord, and keyword fields through get_logger()."""

from __future__ import annotations

import inspect
import io
import logging
import threading
from typing import Any

import logging_config

from .conftest import parse_lines


class _Collect(logging.Handler):
    """A third-party handler: it knows nothing of logging_config."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_any_handler_sees_the_bound_context_on_the_record() -> None:
    logging_config.configure(service="api", stream=io.StringIO())
    collect = _Collect()
    logger = logging.getLogger("third.party")
    logger.addHandler(collect)
    try:
        with logging_config.context(request_id="req-1", company_id="co-1"):
            logger.info("hello")
        logger.info("outside")
    finally:
        logger.removeHandler(collect)
    inside, outside = collect.records
    assert dict(inside.ecvi_context) == {"request_id": "req-1", "company_id": "co-1"}
    assert dict(outside.ecvi_context) == {}


def test_context_filter_sets_flat_attributes_and_extra_wins() -> None:
    logging_config.configure(service="api", stream=io.StringIO())
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(request_id)s %(company_id)s %(user_id)s %(message)s"))
    handler.addFilter(logging_config.ContextFilter())
    logger = logging.getLogger("third.flat")
    logger.addHandler(handler)
    try:
        with logging_config.context(request_id="req-2", company_id="co-2"):
            logger.info("one")
            logger.info("two", extra={"request_id": "req-override"})
    finally:
        logger.removeHandler(handler)
    assert out.getvalue().splitlines() == ["req-2 co-2 None one", "req-override co-2 None two"]


def test_a_record_formatted_later_elsewhere_keeps_the_context_it_was_made_in() -> None:
    # A QueueHandler-style setup: the record is made in the request, formatted in another thread.
    stream = io.StringIO()
    logging_config.configure(service="api", stream=stream)
    [json_handler] = [h for h in logging.getLogger().handlers if getattr(h, "stream", None) is stream]
    with logging_config.context(request_id="req-queued", user_id="u-1"):
        record = logging.getLogger("app").makeRecord("app", logging.INFO, __file__, 1, "queued", (), None)
    worker = threading.Thread(target=json_handler.handle, args=(record,))
    worker.start()
    worker.join()
    [line] = parse_lines(stream.getvalue())
    assert (line["request_id"], line["user_id"]) == ("req-queued", "u-1")


def test_keyword_fields_make_the_same_line_as_extra() -> None:
    stream = io.StringIO()
    logging_config.configure(service="api", stream=stream)
    log = logging_config.get_logger("app.api.v1.companies")
    with logging_config.context(request_id="req-3"):
        log.info("Company created", plan="pro", seats=3)
        logging.getLogger("app.api.v1.companies").info("Company created", extra={"plan": "pro", "seats": 3})
        log.warning("Quota %s%% used", 93, extra={"plan": "pro"}, seats=4)
    first, second, third = parse_lines(stream.getvalue())
    first.pop("timestamp"), second.pop("timestamp")
    assert first == second
    assert (third["message"], third["plan"], third["seats"], third["level"]) == ("Quota 93% used", "pro", 4, "WARNING")


def test_keyword_logger_reports_the_callers_line_and_exceptions() -> None:
    logging_config.configure(service="api", stream=io.StringIO())
    collect = _Collect()
    base = logging.getLogger("app.kw")
    base.addHandler(collect)
    log = logging_config.get_logger("app.kw")
    try:
        line = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
        log.info("here", field=1)
        try:
            raise KeyError("k")
        except KeyError:
            log.exception("failed", order_id="o-1")
        base.setLevel(logging.WARNING)
        log.info("filtered out")
    finally:
        base.setLevel(logging.NOTSET)
        base.removeHandler(collect)
    here, failed = collect.records
    assert (here.lineno, here.funcName, here.pathname) == (line, inspect.currentframe().f_code.co_name, __file__)  # type: ignore[union-attr]
    assert failed.exc_info is not None and failed.exc_info[0] is KeyError
    attrs: dict[str, Any] = failed.__dict__
    assert attrs["order_id"] == "o-1" and failed.levelno == logging.ERROR
