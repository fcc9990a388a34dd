"""logging_config.testing.capture_logs, as an application's test would use it."""

from __future__ import annotations

import logging
from collections.abc import Callable

import logging_config
from logging_config.testing import capture_logs

from .conftest import Output, check_record

log = logging.getLogger("app.users")


def test_capture_logs_returns_the_records_as_written(configure_output: Callable[..., Output]) -> None:
    configure_output(service="billing", redact=["iban"])
    logging_config.bind(request_id="r-1")
    with capture_logs() as logs:
        log.info("charged", extra={"iban": "DE00", "amount": 5})
    [record] = logs
    check_record(record)
    assert record["service"] == "billing" and record["request_id"] == "r-1"
    assert record["iban"] == "[REDACTED]" and record["amount"] == 5


def test_capture_logs_works_without_configure_and_can_lower_the_level() -> None:
    root = logging.getLogger()
    root.setLevel(logging.WARNING)
    with capture_logs(level="DEBUG") as logs:
        log.debug("detail")
    assert [record["message"] for record in logs] == ["detail"]
    check_record(logs[0])
    assert logs[0]["service"] == "unknown"
    assert root.level == logging.WARNING  # restored


def test_capture_logs_stops_capturing_after_the_block() -> None:
    with capture_logs() as logs:
        log.warning("inside")
    log.warning("outside")
    assert [record["message"] for record in logs] == ["inside"]
