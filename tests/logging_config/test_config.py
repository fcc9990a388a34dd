"""configure() and dict_config(): handlers, framework loggers, formats, levels."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from typing import Any

import pytest

import logging_config
from logging_config import ConsoleFormatter, JsonFormatter
from logging_config._config import FRAMEWORK_LOGGERS

from .conftest import Output, parse_lines

log = logging.getLogger("app.config")


def _ours(handlers: list[logging.Handler]) -> list[logging.Handler]:
    return [handler for handler in handlers if isinstance(handler.formatter, JsonFormatter)]


def test_configure_twice_does_not_duplicate_handlers(configure_output: Any) -> None:
    configure_output()
    second = configure_output(service="again")
    assert len(_ours(logging.getLogger().handlers)) == 1
    log.info("once")
    [record] = second.records()
    assert record["service"] == "again"


def test_configure_leaves_handlers_it_did_not_install(configure_output: Any) -> None:
    foreign = logging.StreamHandler(io.StringIO())
    logging.getLogger().addHandler(foreign)
    configure_output()
    configure_output()
    assert foreign in logging.getLogger().handlers


def test_level_filters_records(configure_output: Any) -> None:
    output = configure_output(level="WARNING")
    log.info("hidden")
    log.warning("shown")
    assert [record["message"] for record in output.records()] == ["shown"]


def test_service_environment_and_version_must_be_given_as_text() -> None:
    with pytest.raises(ValueError, match="service"):
        logging_config.configure(service="", stream=io.StringIO())
    with pytest.raises(ValueError, match="version"):
        logging_config.configure(service="api", version=None, stream=io.StringIO())  # type: ignore[arg-type]


def test_unknown_level_and_format_are_rejected() -> None:
    with pytest.raises(ValueError, match="level"):
        logging_config.configure(service="s", level="LOUD", stream=io.StringIO())
    with pytest.raises(ValueError, match="fmt"):
        logging_config.configure(service="s", fmt="xml", stream=io.StringIO())  # type: ignore[arg-type]


def test_stdout_is_the_default_stream(capsys: pytest.CaptureFixture[str]) -> None:
    logging_config.configure(service="s", environment="e", version="v")
    log.warning("to stdout")
    [record] = parse_lines(capsys.readouterr().out)
    assert record["message"] == "to stdout"


@pytest.mark.parametrize("name", FRAMEWORK_LOGGERS)
def test_framework_loggers_write_the_same_schema(configure_output: Any, name: str) -> None:
    framework_logger = logging.getLogger(name)
    own_stream = io.StringIO()
    framework_logger.addHandler(logging.StreamHandler(own_stream))  # what the framework installs
    framework_logger.propagate = False
    output = configure_output()
    framework_logger.warning("framework line")
    assert own_stream.getvalue() == ""
    [record] = output.records()
    assert record["logger"] == name and record["message"] == "framework line"


def test_uvicorn_access_lines_can_be_left_to_the_middleware(configure_output: Any) -> None:
    output = configure_output(uvicorn_access=False)
    logging.getLogger("uvicorn.access").info('127.0.0.1:1 - "GET / HTTP/1.1" 200')
    logging.getLogger("uvicorn.error").info("Application startup complete.")
    assert [record["logger"] for record in output.records()] == ["uvicorn.error"]
    configure_output()  # and configuring again restores them
    assert logging.getLogger("uvicorn.access").level == logging.NOTSET


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_format_is_console_on_a_terminal_and_json_elsewhere() -> None:
    terminal = _Terminal()
    logging_config.configure(service="s", fmt="auto", stream=terminal)
    logging_config.bind(request_id="r-1", company_id="c-1")
    log.warning("Company created", extra={"plan": "pro plan"})
    line = terminal.getvalue()
    head, _, fields = line.partition("  Company created  ")
    assert head.endswith(" WARNING app.config")
    assert fields.rstrip("\n") == (
        'request_id=r-1  company_id=c-1  service=s  environment=development  version=unknown  plan="pro plan"'
    )
    pipe = io.StringIO()
    logging_config.configure(service="s", fmt="auto", stream=pipe)
    log.warning("Company created")
    assert json.loads(pipe.getvalue())["message"] == "Company created"


def test_console_format_prints_the_traceback_after_the_line() -> None:
    stream = io.StringIO()
    logging_config.configure(service="s", fmt="console", stream=stream)
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    first, *rest = stream.getvalue().splitlines()
    assert first.split()[1:4] == ["ERROR", "app.config", "failed"]
    assert rest[0] == "Traceback (most recent call last):" and rest[-1] == "ValueError: boom"


def test_dict_config_gives_the_same_lines_as_configure(capsys: pytest.CaptureFixture[str]) -> None:
    config = logging_config.dict_config(service="api", environment="prod", version="2", redact=["iban"])
    logging.config.dictConfig(config)
    logging_config.bind(request_id="r-9")
    log.info("via dictConfig", extra={"iban": "DE00", "n": 1})
    logging.getLogger("uvicorn.error").info("server line")
    records = parse_lines(capsys.readouterr().out)
    assert [record["message"] for record in records] == ["via dictConfig", "server line"]
    first = records[0]
    assert (first["service"], first["environment"], first["version"]) == ("api", "prod", "2")
    assert first["request_id"] == "r-9" and first["iban"] == "[REDACTED]"
    assert isinstance(logging.getLogger().handlers[0].formatter, JsonFormatter)


def test_dict_config_is_plain_data_and_names_the_console_formatter_when_asked() -> None:
    config = logging_config.dict_config(service="api", fmt="console", fluent={"host": "127.0.0.1", "port": 1})
    json.dumps(config)  # serializable, so it can live in a YAML/JSON file too
    assert config["handlers"]["ecvi_stream"]["formatter"] == "ecvi_console"
    assert config["formatters"]["ecvi_console"]["()"].endswith(ConsoleFormatter.__name__)
    assert config["handlers"]["ecvi_fluent"]["tag"] == "ecvi.api"
    assert set(config["root"]["handlers"]) == {"ecvi_stream", "ecvi_fluent"}


def test_output_fixture_checks_lines(output: Output) -> None:
    log.info("a")
    log.info("b")
    assert [record["message"] for record in output.records()] == ["a", "b"]


def test_dict_config_builds_the_fluent_handler_with_the_json_formatter() -> None:
    from logging_config.fluent import FluentForwardHandler

    logging.config.dictConfig(
        logging_config.dict_config(service="api", fluent={"host": "127.0.0.1", "port": 1, "queue_maxsize": 5})
    )
    [fluent] = [h for h in logging.getLogger().handlers if isinstance(h, FluentForwardHandler)]
    assert isinstance(fluent.formatter, JsonFormatter) and fluent.tag == "ecvi.api"
    assert fluent.formatter.static_fields["service"] == "api"
