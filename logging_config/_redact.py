"""Secret redaction: secret-looking keys at any depth, and credentials inside strings.

Keys are compared after lower-casing and dropping ``-`` and ``_``, and match when they *contain*
a secret word, so ``X-Api-Key``, ``access_token`` and ``apiKey`` are all caught. Over-redacting a
harmless ``token_count`` is the price of never writing a real token. Short words (``auth``,
``pwd``) must be whole words of the key instead, because ``author`` and ``authority`` are not
secrets. Inside strings the same test decides for ``key=value`` and ``key: value`` pairs; auth
schemes, URL passwords, signed query parameters and header pairs have rules of their own.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from typing import Any

__all__ = ["DEFAULT_SECRET_KEYS", "DEFAULT_SECRET_WORDS", "REDACTED", "Redactor"]

REDACTED = "[REDACTED]"

#: Secret when the normalised key contains one of these.
DEFAULT_SECRET_KEYS: tuple[str, ...] = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "access_key",
    "private_key",
    "authorization",
    "cookie",
    "credential",
    "session_id",
)

#: Secret only as a whole word of the key (``basic_auth``, ``X-Auth``, ``DB_PWD``): as
#: substrings they would catch ``author`` or ``authority``.
DEFAULT_SECRET_WORDS: tuple[str, ...] = ("auth", "pwd")
_WHOLE_WORDS = frozenset(DEFAULT_SECRET_WORDS)

#: Words that contain a secret key but name none (``tokenizer``, ``tokenization``).
_HARMLESS = ("tokeniz",)

#: Query parameters that carry a credential although their name is no secret key elsewhere:
#: Google's ``key``, Azure SAS ``sig``, S3 and GCS presigned URLs.
_QUERY_SECRETS = ("key", "sig", "signature", "x-amz-signature", "x-goog-signature")

#: Authorization schemes kept readable before the redacted credential (``ApiKey`` is
#: Elasticsearch's, ``Token`` Django REST framework's).
_SCHEMES = r"(?:bearer|basic|digest|token|apikey)[ \t]+"

#: Deeper structures are cut here; a runaway or self-referencing value must not cost a stack.
MAX_DEPTH = 32
_TOO_DEEP = "[TOO DEEP]"
_KEY_CACHE_SIZE = 4096
_CONTAINERS = (dict, list, tuple, set, frozenset)
_SCALARS = (int, float, bool, type(None))
_KEY_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")


#: Passwords in URLs: scheme://user:password@host, the user possibly empty (redis://:pw@cache).
#: The password runs to the last "@" before the query, so "/" and "@" in it are covered;
#: "host:8080/a@b" is a port and a path, not a password. Possessive, bounded steps keep a run of
#: "x://a:b…" without "@" linear.
_URL_PASSWORD = r"(?P<userinfo>://[^/\s:@\[\]\"'<>]*:)(?![0-9]+(?:[/?#\"'<>\s]|$))(?:[^\s?#\"'<>@]{0,256}+@)++"
_URL_PATTERN = re.compile(_URL_PASSWORD)


def _replace_url_password(match: re.Match[str]) -> str:
    return match.group("userinfo") + REDACTED + "@"


def _has_whole_secret_word(text: str, lowered: str) -> bool:
    """Whether a secret word ends a word in ``text``: "auth:" or "basicAuth=" but not "author"."""
    if len(lowered) != len(text):  # lower() changed the length: positions differ, assume yes
        return True
    for word in DEFAULT_SECRET_WORDS:
        start = lowered.find(word)
        while start >= 0:
            end = start + len(word)
            if not text[end : end + 1].islower():
                return True
            start = lowered.find(word, end)
    return False


def _is_written_pair(match: re.Match[str]) -> bool:
    """Whether a ``'name', 'value'`` match is a pair in brackets: ``(b'cookie', b'…')``."""
    text, start = match.string, match.start()
    opener = text[max(0, start - 4) : start].rstrip("\\\"'b")[-1:]
    end = match.end() + len(match.group("quote") or "")
    return opener in ("(", "[") and text[end : end + 1] in (")", "]")


def _normalize(key: str) -> str:
    return key.lower().replace("-", "").replace("_", "")


def _looks_like_credential(value: str) -> bool:
    """Tell a token (``dXNlcjpwYXNz``, ``eyJhbGci…``, hex) from an English word (``configuration``)."""
    return any(not ch.islower() for ch in value[1:])


def _alternation(keys: Iterable[str]) -> str:
    """Regex alternation of ``keys``, each separator optional (``api_key`` also finds ``apiKey``)."""
    return "|".join(
        "[-_]?".join(re.escape(part) for part in re.split(r"[-_]", key)) for key in sorted(keys, key=len, reverse=True)
    )


class Redactor:
    """Replaces secrets in log data with ``[REDACTED]``; one instance per formatter."""

    def __init__(self, extra_keys: Iterable[str] = ()) -> None:
        keys = {key.lower() for key in (*DEFAULT_SECRET_KEYS, *extra_keys) if key}
        self.secret_words: tuple[str, ...] = tuple(sorted({_normalize(key) for key in keys}))
        self._key_cache: dict[str, bool] = {}
        quote = r"\\?[\"']"
        self._pattern = re.compile(
            # Credentials in query strings under names that are not secret keys elsewhere.
            rf"(?P<query>[?&](?:{_alternation(_QUERY_SECRETS)})=)[^&#\s\"'<>]+"
            # key=value, key: value, "key": "value" and ("key", "value") where the key holds a
            # secret word (the whole key is checked again in _replace). A quoted value is
            # redacted up to its closing quote; an auth scheme before the value is kept.
            # The key is taken whole and never given back: backtracking into runs such as
            # "tokentoken…" would be quadratic.
            rf"|(?<![\w-])(?=[\w-]*?(?:{_alternation((*keys, *DEFAULT_SECRET_WORDS))}))(?P<key>[\w-]++)"
            rf"(?P<sep>(?:{quote})?[ \t]*[=:][ \t]*|{quote},[ \t]*b?(?={quote}))"
            rf"(?:(?P<quote>{quote})(?P<qscheme>{_SCHEMES})?(?:(?!(?P=quote))(?:\\.|[^\n\\]))*"
            rf"|(?P<pscheme>{_SCHEMES})?[^\s&,;\"'<>()\[\]{{}}]+)"
            # Authorization header values on their own: "Bearer <token>", "ApiKey <base64>".
            r"|(?P<scheme>\b(?:bearer|basic|token|apikey)[ \t]+)(?P<cred>[A-Za-z0-9\-._~+/]{8,}=*)"
            rf"|{_URL_PASSWORD}",
            re.IGNORECASE,
        )

    def is_secret_key(self, key: str) -> bool:
        """True when ``key`` names a secret: it contains a secret key (case- and ``-``/``_``-
        insensitive) or has a secret word (``auth``, ``pwd``) as one of its words."""
        cached = self._key_cache.get(key)
        if cached is not None:
            return cached
        normalized = _normalize(key)
        for harmless in _HARMLESS:
            normalized = normalized.replace(harmless, "")
        secret = any(word in normalized for word in self.secret_words) or any(
            word.lower() in _WHOLE_WORDS for word in _KEY_WORDS.findall(key)
        )
        if len(self._key_cache) < _KEY_CACHE_SIZE:
            self._key_cache[key] = secret
        return secret

    def redact_str(self, text: str) -> str:
        """``text`` with credentials it contains replaced.

        Cheap substring tests rule out almost every string before the regex runs: Python's
        case-insensitive alternations cost microseconds per short string, and this runs for every
        message and string value.
        """
        lowered = text.lower()
        if "bearer" in lowered or "basic" in lowered or "token" in lowered or "apikey" in lowered:
            return self._pattern.sub(self._replace, text)
        if "=" in text or ":" in text or "," in text:  # "," for header pairs written as tuples
            if "?" in text and ("key=" in lowered or "sig" in lowered):
                return self._pattern.sub(self._replace, text)
            squashed = lowered.replace("-", "").replace("_", "")
            for word in self.secret_words:
                if word in squashed:
                    return self._pattern.sub(self._replace, text)
            if ("auth" in squashed or "pwd" in squashed) and _has_whole_secret_word(text, lowered):
                return self._pattern.sub(self._replace, text)
            if "@" in text and "://" in text:
                return _URL_PATTERN.sub(_replace_url_password, text)
        return text

    def _replace(self, match: re.Match[str]) -> str:
        key = match.group("key")
        if key is not None:
            sep = match.group("sep")
            # "author: …" names no secret, and "['token', 'scope', …]" is a list of names, not a
            # (name, value) pair; either way the rest may still hold a credential.
            if not self.is_secret_key(key) or ("," in sep and not _is_written_pair(match)):
                rest = match.group(0)[len(key) + len(sep) :]
                return key + sep + self._pattern.sub(self._replace, rest)
            quote = match.group("quote")
            if quote is not None:  # the closing quote is not part of the match
                return key + sep + quote + (match.group("qscheme") or "") + REDACTED
            return key + sep + (match.group("pscheme") or "") + REDACTED
        query = match.group("query")
        if query is not None:
            return query + REDACTED
        scheme = match.group("scheme")
        if scheme is not None:
            if not _looks_like_credential(match.group("cred")):
                return match.group(0)
            return scheme + REDACTED
        return _replace_url_password(match)

    def redact(self, value: Any, depth: int = 0) -> Any:
        """A copy of ``value`` with secret keys and credentials replaced, at any depth.

        Containers come back as plain dicts and lists with string keys, and sets sorted when
        they can be, so what follows can always encode them.
        """
        if isinstance(value, str):
            return self.redact_str(value)
        if isinstance(value, _SCALARS):
            return value
        if depth >= MAX_DEPTH:
            return _TOO_DEEP
        if isinstance(value, dict):
            return self.redact_mapping(value, depth + 1)
        if isinstance(value, _CONTAINERS):
            if type(value) is tuple and self._is_secret_pair(value):
                return [self.redact(value[0], depth + 1), REDACTED]
            items = value
            if isinstance(value, (set, frozenset)):
                try:
                    items = sorted(value)
                except TypeError:
                    items = list(value)
            # A header list (ASGI's [(b"cookie", b"…")], or its JSON form with lists as pairs).
            return [
                [self.redact(item[0], depth + 2), REDACTED]
                if type(item) in (tuple, list) and self._is_secret_pair(item)
                else self.redact(item, depth + 1)
                for item in items
            ]
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return self.redact_mapping(dataclasses.asdict(value), depth + 1)
        model_dump = getattr(value, "model_dump", None)
        if callable(model_dump):  # pydantic models: their repr would show every field
            try:
                dumped = model_dump(mode="json")
            except Exception:
                return value
            return self.redact(dumped, depth + 1)
        return value

    def _is_secret_pair(self, pair: tuple[Any, ...] | list[Any]) -> bool:
        """A (name, value) header pair whose name is a secret key, as str or bytes."""
        if len(pair) != 2:
            return False
        name = pair[0]
        if isinstance(name, (bytes, bytearray)):
            name = bytes(name).decode("latin-1")
        return isinstance(name, str) and self.is_secret_key(name)

    def redact_mapping(self, mapping: dict[Any, Any], depth: int = 0) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in mapping.items():
            if not isinstance(key, str):
                key = key_to_str(key)
            out[key] = REDACTED if self.is_secret_key(key) else self.redact(value, depth)
        return out


def key_to_str(key: Any) -> str:
    return key if isinstance(key, str) else safe_str(key)


def safe_str(value: Any) -> str:
    """``str(value)``, or its repr, or a placeholder: turning a value into text never raises."""
    try:
        return str(value)
    except Exception:
        return safe_repr(value)


def safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<unrepresentable {type(value).__name__}>"
