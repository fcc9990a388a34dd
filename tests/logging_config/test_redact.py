"""Secrets never reach a line: keys at any depth, credentials inside strings, configurable keys."""

from __future__ import annotations

import logging
from typing import Any

import pytest

import logging_config
from logging_config._redact import Redactor

from .conftest import Output

log = logging.getLogger("app.auth")


@pytest.mark.parametrize(
    "key",
    [
        "password", "PASSWORD", "passwd", "user_password", "secret", "client_secret", "token",
        "access_token", "refreshToken", "api_key", "apiKey", "X-Api-Key", "x_api_key", "API-KEY",
        "authorization", "Authorization", "Proxy-Authorization", "cookie", "Cookie", "set-cookie",
        "Set-Cookie", "set_cookie", "private_key",
    ],
)  # fmt: skip
def test_secret_keys_are_matched_case_and_separator_insensitively(key: str) -> None:
    assert Redactor().is_secret_key(key)


@pytest.mark.parametrize("key", ["user_id", "company_id", "path", "status", "basic", "plan", "keyboard"])
def test_ordinary_keys_are_left_alone(key: str) -> None:
    assert not Redactor().is_secret_key(key)


def test_secret_keys_are_redacted_at_any_depth(output: Output) -> None:
    log.info(
        "login",
        extra={
            "password": "hunter2",
            "request": {
                "headers": {"Authorization": "Bearer abc", "X-Api-Key": "k-1", "Accept": "json"},
                "cookies": [{"name": "session", "Set-Cookie": "sid=1"}],
                "body": ({"user": "bob", "grant": {"access_token": "t0k3n", "ttl": 30}},),
            },
        },
    )
    [record] = output.records()
    assert record["password"] == "[REDACTED]"
    headers = record["request"]["headers"]
    assert headers == {"Authorization": "[REDACTED]", "X-Api-Key": "[REDACTED]", "Accept": "json"}
    assert record["request"]["cookies"] == "[REDACTED]"  # the key "cookies" itself names a secret
    assert record["request"]["body"] == [{"user": "bob", "grant": {"access_token": "[REDACTED]", "ttl": 30}}]
    assert "hunter2" not in output.text and "t0k3n" not in output.text and "k-1" not in output.text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig", "Authorization: Bearer [REDACTED]"),
        ("sent bearer 0123456789abcdef upstream", "sent bearer [REDACTED] upstream"),
        ("header was Basic dXNlcjpwYXNzd29yZA==", "header was Basic [REDACTED]"),
        ("GET /cb?code=1&access_token=abc.def&x=2", "GET /cb?code=1&access_token=[REDACTED]&x=2"),
        ("connecting to postgres://app:s3cr3t@db:5432/ecvi", "connecting to postgres://app:[REDACTED]@db:5432/ecvi"),
        ('config {"password": "pw"}', 'config {"password": "[REDACTED]"}'),
        ("X-Api-Key=k-123", "X-Api-Key=[REDACTED]"),
        ("a basic configuration error", "a basic configuration error"),
        ("the bearer of bad news", "the bearer of bad news"),
        ("Company created", "Company created"),
        ("tokenless path: /x", "tokenless path: /x"),
    ],
)
def test_credentials_inside_strings_are_redacted(text: str, expected: str) -> None:
    assert Redactor().redact_str(text) == expected


def test_messages_context_and_exceptions_are_redacted_too(output: Output) -> None:
    logging_config.bind(request_id="r", upstream_header="Bearer abcdefgh12345")
    try:
        raise PermissionError("rejected Authorization: Bearer zzzzzzzz99999")
    except PermissionError:
        log.exception("call with token=%s failed", "t-777")
    [record] = output.records(bound_extra=("upstream_header",))
    assert record["message"] == "call with token=[REDACTED] failed"
    assert record["upstream_header"] == "Bearer [REDACTED]"  # no secret key; the credential is
    assert "zzzzzzzz99999" not in record["exception"]["message"]
    assert "zzzzzzzz99999" not in record["exception"]["stacktrace"]
    assert "t-777" not in output.text and "abcdefgh12345" not in output.text


def test_configured_keys_are_added_to_the_defaults(configure_output: Any) -> None:
    output = configure_output(redact=["iban", "ssn"])
    log.info("pay", extra={"IBAN": "DE89370400440532013000", "customer": {"SSN": "078-05-1120"}, "token": "t"})
    [record] = output.records()
    assert record["IBAN"] == "[REDACTED]"
    assert record["customer"] == {"SSN": "[REDACTED]"}
    assert record["token"] == "[REDACTED]"


def test_pydantic_models_are_dumped_and_redacted(output: Output) -> None:
    from pydantic import BaseModel

    class Signup(BaseModel):
        email: str
        password: str

    log.info("signup", extra={"payload": Signup(email="a@b.c", password="pw")})
    [record] = output.records()
    assert record["payload"] == {"email": "a@b.c", "password": "[REDACTED]"}
