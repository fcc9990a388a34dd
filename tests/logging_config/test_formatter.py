"""The JSON line: schema, field order, timestamps, exceptions, and values JSON cannot encode."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import logging
import re
import sys
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import logging_config
from logging_config import JsonFormatter

from .conftest import Output, check_record, parse_lines, without_pytest_log_capture

log = logging.getLogger("app.api.v1.companies")


def _format(record: logging.LogRecord, **kwargs: Any) -> dict[str, Any]:
    line = JsonFormatter(service="svc", environment="test", version="9", **kwargs).format(record)
    assert "\n" not in line
    return check_record(json.loads(line))


def _record(msg: Any = "hello", *args: Any, extra: dict[Any, Any] | None = None, **kwargs: Any) -> logging.LogRecord:
    return log.makeRecord(log.name, logging.INFO, __file__, 1, msg, args, None, extra=extra, **kwargs)


def test_typical_line_has_the_exact_fields_in_order(output: Output) -> None:
    logging_config.bind(request_id="req-1", user_id="user-123", company_id="c-9")
    log.info("Company created", extra={"company_name": "Acme", "plan": "pro", "seats": 12})

    [record] = output.records()
    assert list(record) == [
        "timestamp", "level", "logger", "message",
        "request_id", "user_id", "company_id",
        "service", "environment", "version",
        "company_name", "plan", "seats",
    ]  # fmt: skip
    assert record["level"] == "INFO"
    assert record["logger"] == "app.api.v1.companies"
    assert record["message"] == "Company created"
    assert (record["request_id"], record["user_id"], record["company_id"]) == ("req-1", "user-123", "c-9")
    assert (record["service"], record["environment"], record["version"]) == ("ecvi-api", "test", "1.2.3")
    assert (record["company_name"], record["plan"], record["seats"]) == ("Acme", "pro", 12)


def test_timestamp_is_rfc3339_utc_with_milliseconds() -> None:
    record = _record()
    record.created = datetime.datetime(2025, 1, 1, 0, 0, 0, 123456, tzinfo=datetime.UTC).timestamp()
    assert _format(record)["timestamp"] == "2025-01-01T00:00:00.123Z"
    record.created += 1.5  # the per-second cache must notice the new second
    assert _format(record)["timestamp"] == "2025-01-01T00:00:01.623Z"


def test_levels_are_upper_case_names(output: Output) -> None:
    previous_name = logging.getLevelName(25)
    logging.addLevelName(25, "notice")
    log.setLevel(logging.DEBUG)
    try:
        for level in (logging.DEBUG, logging.INFO, 25, logging.WARNING, logging.ERROR, logging.CRITICAL):
            log.log(level, "x")
    finally:
        log.setLevel(logging.NOTSET)
        logging.addLevelName(25, previous_name)
    levels = [record["level"] for record in output.records()]
    assert levels == ["DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL"]


def test_percent_args_are_applied_and_dict_messages_become_fields(output: Output) -> None:
    log.info("created %s for %d users", "Acme", 3)
    log.info({"event": "sync", "count": 2})
    first, second = output.records()
    assert first["message"] == "created Acme for 3 users"
    assert second["message"] == "" and second["event"] == "sync" and second["count"] == 2


def test_extra_fields_named_like_record_fields_do_not_replace_them(output: Output) -> None:
    log.info("hi", extra={"level": "custom", "service": "other", "timestamp": 1, "exception": "x"})
    [record] = output.records()
    assert record["level"] == "INFO" and record["service"] == "ecvi-api"
    assert record["extra_level"] == "custom" and record["extra_service"] == "other"
    assert record["extra_timestamp"] == 1 and record["extra_exception"] == "x"


def test_context_ids_passed_as_extra_land_in_the_context_block(output: Output) -> None:
    logging_config.bind(request_id="bound")
    log.info("hi", extra={"plan": "pro", "company_id": 42, "request_id": "override"})
    [record] = output.records()
    assert list(record)[4:6] == ["request_id", "company_id"]
    assert record["request_id"] == "override" and record["company_id"] == "42"


def test_private_and_uvicorn_colour_attributes_are_not_fields(output: Output) -> None:
    log.info("hi", extra={"_internal": 1, "color_message": "\x1b[32mhi\x1b[0m"})
    [record] = output.records()
    assert "_internal" not in record and "color_message" not in record


def test_exception_is_structured_and_last(output: Output) -> None:
    class PaymentDeclined(Exception):
        pass

    try:
        raise PaymentDeclined("card\nrefused")
    except PaymentDeclined:
        log.exception("charge failed", extra={"amount": 10})
    [record] = output.records()
    assert list(record)[-2:] == ["amount", "exception"]
    exception = record["exception"]
    assert exception["type"] == f"{__name__}.PaymentDeclined" or exception["type"].endswith("PaymentDeclined")
    assert exception["message"] == "card\nrefused"
    assert exception["stacktrace"].startswith("Traceback (most recent call last):")
    assert "raise PaymentDeclined" in exception["stacktrace"]
    assert record["level"] == "ERROR"


def test_builtin_exception_type_is_not_module_qualified(output: Output) -> None:
    lookup: dict[str, int] = {}
    try:
        lookup["missing"]
    except KeyError:
        log.error("lookup failed", exc_info=True)
    [record] = output.records()
    assert record["exception"]["type"] == "KeyError"
    assert record["exception"]["message"] == "'missing'"


def test_exception_logged_outside_an_except_block_has_no_exception_field(output: Output) -> None:
    log.exception("nothing raised")
    [record] = output.records()
    assert "exception" not in record


def test_exception_text_without_exc_info_is_parsed() -> None:
    record = _record("from another process")
    record.exc_text = 'Traceback (most recent call last):\n  File "x", line 1\nValueError: bad value'
    exception = _format(record)["exception"]
    assert exception == {"type": "ValueError", "message": "bad value", "stacktrace": record.exc_text}


def test_stack_info_is_a_field(output: Output) -> None:
    log.info("where am I", stack_info=True)
    [record] = output.records()
    assert record["stack_info"].startswith("Stack (most recent call last):")


def test_unencodable_values_fall_back_to_readable_text(output: Output) -> None:
    class Opaque:
        def __repr__(self) -> str:
            return "<Opaque token=abc123secret>"

    class Color(enum.Enum):
        RED = "red"

    @dataclasses.dataclass
    class Login:
        user: str
        password: str

    log.info(
        "values",
        extra={
            "a_set": {3, 1, 2},
            "mixed_set": {1, "a"},
            "frozen": frozenset({"x"}),
            "an_object": Opaque(),
            "raw": b"\xff\x00abc",
            "buffer": bytearray(b"xyz"),
            "non_str_keys": {1: "one", (2, 3): "tuple", None: "none", 4.5: "float"},
            "big_int": 2**100,
            "decimal": decimal.Decimal("1.10"),
            "uuid": uuid.UUID(int=1),
            "when": datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC),
            "color": Color.RED,
            "error": ValueError("nope"),
            "login": Login("bob", "hunter2"),
            "nested": [{"deep": {"deeper": {1, 2}}}],
        },
    )
    [record] = output.records()
    assert record["a_set"] == [1, 2, 3]
    assert sorted(map(str, record["mixed_set"])) == ["1", "a"]
    assert record["frozen"] == ["x"]
    assert record["an_object"] == "<Opaque token=[REDACTED]>"
    assert record["raw"] == "\\xff\x00abc"
    assert record["buffer"] == "xyz"
    assert record["non_str_keys"] == {"1": "one", "(2, 3)": "tuple", "None": "none", "4.5": "float"}
    assert record["big_int"] == str(2**100)  # beyond 64 bits most JSON readers lose digits
    assert record["decimal"] == "1.10"
    assert record["uuid"] == "00000000-0000-0000-0000-000000000001"
    assert record["when"].startswith("2025-01-01T00:00:00")
    assert record["color"] == "red"
    assert record["error"] == "ValueError: nope"
    assert record["login"] == {"user": "bob", "password": "[REDACTED]"}
    assert record["nested"] == [{"deep": {"deeper": [1, 2]}}]


def test_values_whose_repr_or_str_raise_never_break_logging(output: Output) -> None:
    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

        def __str__(self) -> str:
            raise RuntimeError("no str")

    with without_pytest_log_capture():
        log.info("hostile", extra={"value": Hostile(), "keys": {Hostile(): 1}})
        log.info(Hostile())  # the message itself cannot become text
    first, second = output.records()
    assert first["value"] == "<unrepresentable Hostile>"
    assert first["keys"] == {"<unrepresentable Hostile>": 1}
    assert second["message"] == "<unrepresentable Hostile>" and "logging_error" in second


def test_cycles_surrogates_and_deep_nesting_still_produce_a_line(output: Output) -> None:
    cycle: list[Any] = [1]
    cycle.append(cycle)
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(300):
        node["d"] = {}
        node = node["d"]
    log.info("odd", extra={"cycle": cycle, "surrogate": "a\udc80b", "deep": deep})
    [record] = output.records()
    assert record["cycle"][0] == 1
    assert "[TOO DEEP]" in json.dumps(record["cycle"])
    assert record["surrogate"] == "a\\udc80b"
    assert "[TOO DEEP]" in json.dumps(record["deep"])


def test_mismatched_format_args_give_a_line_not_a_traceback(output: Output, capsys: Any) -> None:
    logging_config.bind(request_id="r-1")
    with without_pytest_log_capture():
        log.info("expected %s and %s", "only one")
    [record] = output.records()
    assert record["message"] == "expected %s and %s"
    assert record["request_id"] == "r-1"
    assert record["args"] == "('only one',)"
    assert "not enough arguments" in record["logging_error"]
    assert "Logging error" not in capsys.readouterr().err


def test_huge_message_is_one_line(output: Output) -> None:
    message = ("x" * 1023 + "\n") * 1024  # 1 MiB with a newline every KiB
    log.info(message)
    assert output.text.count("\n") == 1
    [record] = output.records()
    assert record["message"] == message


def test_huge_message_with_secrets_is_redacted_quickly(output: Output) -> None:
    chunk = "GET /x?token=abc&page=1 Authorization: Bearer eyJabc.def-GHI lorem ipsum dolor sit amet "
    message = chunk * ((1 << 20) // len(chunk))
    log.info(message)
    [record] = output.records()
    assert "eyJabc" not in record["message"] and "token=abc" not in record["message"]
    assert record["message"].count("[REDACTED]") == 2 * message.count("GET /x")


def test_non_ascii_and_control_characters_survive(output: Output) -> None:
    text = "Société créée ✓ — 会社 🚀\r\n\ttab\x00nul\u2028sep\u2029para\x85nel\x0bvt\x1ceof"
    log.info(text, extra={"名前": "значение"})
    assert output.text.count("\n") == 1
    [record] = output.records()
    assert record["message"] == text
    assert record["名前"] == "значение"


def test_bound_keys_beyond_the_known_ones_follow_the_context_fields(output: Output) -> None:
    logging_config.bind(tenant="acme", request_id="r")
    log.info("hi", extra={"x": 1})
    [record] = output.records(bound_extra=("tenant",))
    assert list(record)[4:6] == ["request_id", "tenant"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    message=st.text(),
    extra=st.dictionaries(
        st.text(min_size=1).filter(
            lambda k: (
                not k.startswith("_")
                and k not in logging.LogRecord("n", 0, "p", 0, "m", (), None).__dict__
                and k not in ("message", "asctime")
            )
        ),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(),
            lambda children: (
                st.lists(children, max_size=3)
                | st.dictionaries(st.text(max_size=8), children, max_size=3)
                | st.frozensets(st.integers(), max_size=3)
            ),
            max_leaves=10,
        ),
        max_size=5,
    ),
)
def test_any_message_and_extras_give_exactly_one_valid_line(message: str, extra: dict[str, Any]) -> None:
    record = _record(message, extra=extra)
    line = JsonFormatter(service="s", environment="e", version="v").format(record)
    [parsed] = parse_lines(line + "\n")
    assert parsed["message"] == JsonFormatter().redactor.redact_str(message)


def test_formatter_keeps_python_json_logger_as_its_base() -> None:
    from pythonjsonlogger.orjson import OrjsonFormatter

    assert issubclass(JsonFormatter, OrjsonFormatter)


def test_line_is_compact_single_line_json(output: Output) -> None:
    log.info("a\nb")
    line = output.text
    assert re.fullmatch(r"\{[^\n]*\}\n", line)
    assert ": " not in line and ", " not in line


def test_attributes_from_custom_record_classes_are_fields() -> None:
    class EarlyRecord(logging.LogRecord):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.region = "eu-west-1"  # set before LogRecord.__init__: not in the tail of __dict__
            super().__init__(*args, **kwargs)
            self.pod = "api-7d9f"

    record = EarlyRecord(log.name, logging.INFO, __file__, 1, "hi", (), None)
    record.plan = "pro"
    data = _format(record)
    assert (data["region"], data["pod"], data["plan"]) == ("eu-west-1", "api-7d9f", "pro")


def test_a_second_formatter_reuses_the_traceback_text() -> None:
    try:
        raise ValueError("once")
    except ValueError:
        record = log.makeRecord(log.name, logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    first = _format(record)
    assert record.exc_text == first["exception"]["stacktrace"]
    assert _format(record)["exception"] == first["exception"]


def test_python_json_logger_hooks_still_apply_in_subclasses() -> None:
    class WithHost(JsonFormatter):
        def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
            log_data["host"] = "node-1"
            return log_data

    line = WithHost(service="s", environment="e", version="v").format(_record("hi"))
    assert check_record(json.loads(line))["host"] == "node-1"
