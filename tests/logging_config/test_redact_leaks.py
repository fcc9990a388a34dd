"""Credentials that used to slip through: auth schemes, quoted values, broker URLs, header lists,
signed query strings and the usual key spellings; and ordinary text that must stay as it is."""

from __future__ import annotations

import logging
import string
import time
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from logging_config import REDACTED, Redactor

from .conftest import Output

log = logging.getLogger("app.http")

SECRET = "S3cr3tV4lue"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # The Elasticsearch sink's own scheme, and DRF-style tokens.
        (f"Authorization: ApiKey {SECRET}==", "Authorization: ApiKey [REDACTED]"),
        (f"Authorization: Token {SECRET} sent", "Authorization: Token [REDACTED] sent"),
        (f"headers={{'Authorization': 'ApiKey {SECRET}'}}", "headers={'Authorization': 'ApiKey [REDACTED]'}"),
        (f"es auth ApiKey {SECRET}== rejected", "es auth ApiKey [REDACTED] rejected"),
        # Quoted values keep every word of the secret.
        (f'login password="{SECRET} two words" ok', 'login password="[REDACTED]" ok'),
        (f"login password='{SECRET} two' ok", "login password='[REDACTED]' ok"),
        (f'{{\\"password\\": \\"{SECRET} x\\"}}', '{\\"password\\": \\"[REDACTED]\\"}'),
        # The usual Celery broker URL has no user; passwords may hold "/" and "@".
        (f"broker redis://:{SECRET}@cache:6379/0 up", "broker redis://:[REDACTED]@cache:6379/0 up"),
        (f"db postgres://app:{SECRET}/x@db:5432/ecvi", "db postgres://app:[REDACTED]@db:5432/ecvi"),
        (f"mq amqp://u:p@{SECRET}@rabbit:5672//", "mq amqp://u:[REDACTED]@rabbit:5672//"),
        (f"cb redis://:{SECRET}@cache/0?owner=a@b.com", "cb redis://:[REDACTED]@cache/0?owner=a@b.com"),
        # Signed and keyed query strings.
        (f"GET /maps?key={SECRET}&q=x", "GET /maps?key=[REDACTED]&q=x"),
        (
            f"GET /b/o?X-Amz-Credential={SECRET}%2F&X-Amz-Signature={SECRET}&X-Amz-Security-Token={SECRET}",
            "GET /b/o?X-Amz-Credential=[REDACTED]&X-Amz-Signature=[REDACTED]&X-Amz-Security-Token=[REDACTED]",
        ),
        (f"GET /f?sig={SECRET}&se=2025", "GET /f?sig=[REDACTED]&se=2025"),
        (f"GET /f?signature={SECRET}", "GET /f?signature=[REDACTED]"),
        (f"GET /cb?client_secret={SECRET}&apikey={SECRET}", "GET /cb?client_secret=[REDACTED]&apikey=[REDACTED]"),
        # Key spellings inside text.
        (f"Cookie: sessionid={SECRET}; theme=dark", "Cookie: [REDACTED]; theme=dark"),
        (f"set sessionid={SECRET}; path=/", "set sessionid=[REDACTED]; path=/"),
        (f"aws_secret_access_key={SECRET}", "aws_secret_access_key=[REDACTED]"),
        (f"Server=db;Uid=app;Pwd={SECRET};", "Server=db;Uid=app;Pwd=[REDACTED];"),
        (f"X-Auth-Token: {SECRET}", "X-Auth-Token: [REDACTED]"),
        (f"basic_auth={SECRET}", "basic_auth=[REDACTED]"),
        # A header list written out as text (the repr of an ASGI scope).
        (f"scope headers [(b'x-api-key', b'{SECRET}'), (b'accept', b'*/*')]",
         "scope headers [(b'x-api-key', b'[REDACTED]'), (b'accept', b'*/*')]"),
        (f'headers [["cookie", "{SECRET}"]]', 'headers [["cookie", "[REDACTED]"]]'),
    ],
)  # fmt: skip
def test_credentials_in_text_are_redacted_and_the_rest_kept(text: str, expected: str) -> None:
    out = Redactor().redact_str(text)
    assert out == expected
    assert SECRET not in out


@pytest.mark.parametrize(
    "text",
    [
        "the author said so",
        "author: Bob, authority: CN=root",
        "loaded the tokenizer for bert",
        "tokenizer: bert-base, tokenization=wordpiece",
        "https://example.com:8443/path?q=1&page=2",
        "http://host:8080/users/bob@example.com",
        "GET /search?monkey=5&design=flat&keyboard=us",
        "ssh://git@github.com/ecvi/logs.git",
        "a basic configuration error",
        "[(b'accept', b'*/*'), (b'host', b'api')]",
        "missing fields ['password', 'email', 'name']",
        "allowed ('token', 'expires_at', 'scope')",
    ],
)
def test_ordinary_text_is_unchanged(text: str) -> None:
    assert Redactor().redact_str(text) == text


@pytest.mark.parametrize(
    "key",
    [
        "access_key", "aws_access_key_id", "secret_key", "private_key", "pwd", "DB_PWD", "credentials",
        "auth", "Auth", "basicAuth", "upstream_auth", "HTTP_AUTH", "sessionid", "session_id", "sessionId",
        "set-cookie", "x-auth-token", "X-Auth-Token", "proxy-authorization", "X-Amz-Security-Token",
    ],
)  # fmt: skip
def test_usual_secret_key_spellings_are_matched(key: str) -> None:
    assert Redactor().is_secret_key(key)


@pytest.mark.parametrize(
    "key", ["author", "Authority", "authored_by", "co_author", "tokenizer", "tokenization", "dsn", "key", "session"]
)
def test_keys_that_only_look_like_secret_words_are_kept(key: str) -> None:
    assert not Redactor().is_secret_key(key)


def test_a_dsn_keeps_its_host_and_loses_its_password() -> None:
    out = Redactor().redact({"dsn": f"postgresql://app:{SECRET}@db:5432/ecvi", "broker": f"redis://:{SECRET}@c:6379/0"})
    assert out == {"dsn": "postgresql://app:[REDACTED]@db:5432/ecvi", "broker": "redis://:[REDACTED]@c:6379/0"}


def test_asgi_header_lists_are_redacted_at_any_depth() -> None:
    scope = {
        "type": "http",
        "headers": [(b"x-api-key", SECRET.encode()), (b"accept", b"application/json"), (b"host", b"api")],
        "nested": {"deeper": [{"raw": [("cookie", f"sessionid={SECRET}"), ("user-agent", "curl/8")]}]},
        "one": ("authorization", f"Token {SECRET}"),
    }
    out = Redactor().redact(scope)
    assert out["headers"] == [[b"x-api-key", REDACTED], [b"accept", b"application/json"], [b"host", b"api"]]
    assert out["nested"] == {"deeper": [{"raw": [["cookie", REDACTED], ["user-agent", "curl/8"]]}]}
    assert out["one"] == ["authorization", REDACTED]


def test_json_decoded_header_lists_are_redacted() -> None:
    """What the shipper sees: the same list after a JSON round trip, pairs as lists."""
    record = {"scope": {"headers": [["x-api-key", SECRET], ["accept", "*/*"]]}, "tags": ["auth", "login"]}
    out = Redactor().redact(record)
    assert out == {"scope": {"headers": [["x-api-key", REDACTED], ["accept", "*/*"]]}, "tags": ["auth", "login"]}


def test_logged_scope_headers_never_reach_the_line(output: Output) -> None:
    log.info("request", extra={"scope": {"headers": [(b"x-api-key", SECRET.encode()), (b"accept", b"*/*")]}})
    log.info("scope %s", {"headers": [(b"cookie", f"sessionid={SECRET}".encode())]})
    first, second = output.records()
    assert first["scope"] == {"headers": [["x-api-key", REDACTED], ["accept", "*/*"]]}
    assert SECRET not in output.text
    assert second["message"].startswith("scope {'headers': [(b'cookie', b'")


# -- properties: a random secret in each context never survives -----------------------------

#: Token-like secrets; each starts with a letter so that it never reads as a port number.
_TOKEN = st.text(string.ascii_letters + string.digits + "-._~+/", min_size=8, max_size=40).filter(
    lambda s: s[0].isalpha()
)
_PASSWORD = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp"), exclude_characters='"\\'),
    min_size=4,
    max_size=30,
)
_URL_PASSWORD = st.text(string.ascii_letters + string.digits + "!$%*+,;=.-_~:/@", min_size=4, max_size=30).filter(
    lambda s: s[0].isalpha()
)
_QUERY_VALUE = st.text(string.ascii_letters + string.digits + "%-._~+/=", min_size=4, max_size=40)

_HEADER_CONTEXTS = (
    "Authorization: Bearer {}",
    "Authorization: Token {}",
    "Authorization: ApiKey {}",
    "proxy-authorization: Basic {}",
    "X-Api-Key: {}",
    "x-auth-token={}",
    "Cookie: sessionid={}",
)
_QUERY_CONTEXTS = tuple(
    f"GET /p?a=1&{name}={{}}&z=2"
    for name in (
        "key", "token", "access_token", "api_key", "apikey", "signature", "sig", "X-Amz-Signature",
        "X-Amz-Credential", "X-Amz-Security-Token", "password", "secret", "client_secret",
    )
)  # fmt: skip
_URL_CONTEXTS = ("redis://:{}@cache:6379/0", "postgres://app:{}@db:5432/ecvi", "amqp://u:{}@mq//")


def _survives(template: str, secret: str) -> bool:
    assume(secret not in template.replace("{}", " ") + REDACTED)
    return secret in Redactor().redact_str(template.format(secret))


@given(st.sampled_from(_HEADER_CONTEXTS), _TOKEN)
def test_a_header_credential_never_survives(template: str, secret: str) -> None:
    assert not _survives(f"sent {template} upstream", secret)


@given(st.sampled_from(_QUERY_CONTEXTS), _QUERY_VALUE)
def test_a_query_credential_never_survives(template: str, secret: str) -> None:
    assert not _survives(template, secret)


@given(st.sampled_from(_URL_CONTEXTS), _URL_PASSWORD)
def test_a_url_password_never_survives(template: str, secret: str) -> None:
    assert not _survives(f"connecting to {template} now", secret)


@given(st.sampled_from(('password="{}"', "password='{}'", '{{"secret": "{}"}}', "pwd: '{}'")), _PASSWORD)
def test_a_quoted_password_never_survives(template: str, secret: str) -> None:
    assume("'" not in secret or '"' in template)
    assert not _survives(f"config {template} loaded", secret)


@given(
    st.sampled_from(("x-api-key", "cookie", "authorization", "set-cookie", "x-auth-token", "proxy-authorization")),
    _TOKEN,
    st.booleans(),
    st.integers(0, 5),
)
def test_a_header_list_value_never_survives(name: str, secret: str, as_bytes: bool, depth: int) -> None:
    pair: Any = (name.encode(), secret.encode()) if as_bytes else (name, secret)
    value: Any = [(b"accept" if as_bytes else "accept", b"*/*" if as_bytes else "*/*"), pair]
    for _ in range(depth):
        value = {"inner": [value]}
    assume(secret not in f"{name} inner accept */* {REDACTED}")
    assert secret not in repr(Redactor().redact(value))


@given(
    st.sampled_from(
        ("access_key", "pwd", "credentials", "auth", "sessionid", "secret_key", "private_key", "session_id")
    ),
    st.sampled_from(("", "X-", "db_", "aws_", "upstream-")),
    _TOKEN,
)
def test_a_value_under_a_secret_key_never_survives(key: str, prefix: str, secret: str) -> None:
    out = Redactor().redact({"outer": [{prefix + key: secret, "other": 1}]})
    assert out == {"outer": [{prefix + key: REDACTED, "other": 1}]}


@pytest.mark.parametrize(
    "text",
    ["token" * 12_000 + "=", "auth-" * 12_000 + ":", "x://a:bbbbbbb" * 5_000 + " @", "('token', " * 6_000],
)
def test_hostile_strings_cost_linear_time(text: str) -> None:
    """A 60 kB line of repeated key words took seconds (quadratic backtracking); now milliseconds."""
    started = time.process_time()
    Redactor().redact_str(text)
    assert time.process_time() - started < 1.0
