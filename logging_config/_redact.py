"""Secret redaction: secret-looking keys at any depth, and credentials inside strings.

Keys are compared after lower-casing and dropping ``-`` and ``_``, and match when they *contain*
a secret word, so ``X-Api-Key``, ``access_token`` and ``apiKey`` are all caught. Over-redacting a
harmless ``token_count`` is the price of never writing a real token.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from typing import Any

__all__ = ["DEFAULT_SECRET_KEYS", "REDACTED", "Redactor"]

REDACTED = "[REDACTED]"

DEFAULT_SECRET_KEYS: tuple[str, ...] = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "authorization",
    "cookie",
    "set-cookie",
    "private_key",
)

#: Deeper structures are cut here; a runaway or self-referencing value must not cost a stack.
MAX_DEPTH = 32
_TOO_DEEP = "[TOO DEEP]"
_KEY_CACHE_SIZE = 4096
_CONTAINERS = (dict, list, tuple, set, frozenset)
_SCALARS = (int, float, bool, type(None))


def _normalize(key: str) -> str:
    return key.lower().replace("-", "").replace("_", "")


def _looks_like_credential(value: str) -> bool:
    """Tell a token (``dXNlcjpwYXNz``, ``eyJhbGci…``, hex) from an English word (``configuration``)."""
    return any(not ch.islower() for ch in value[1:])


class Redactor:
    """Replaces secrets in log data with ``[REDACTED]``; one instance per formatter."""

    def __init__(self, extra_keys: Iterable[str] = ()) -> None:
        keys = {key.lower() for key in (*DEFAULT_SECRET_KEYS, *extra_keys) if key}
        self.secret_words: tuple[str, ...] = tuple(sorted({_normalize(key) for key in keys}))
        self._key_cache: dict[str, bool] = {}
        key_words = "|".join(
            "[-_]?".join(re.escape(part) for part in re.split(r"[-_]", key))
            for key in sorted(keys, key=len, reverse=True)
        )
        self._pattern = re.compile(
            # key=value / key: value pairs whose key holds a secret word (query strings, headers,
            # "password: x"). An auth scheme in the value is kept so the line stays readable.
            rf"(?P<pair>(?:{key_words})[\w-]*[\"']?[ \t]*[=:][ \t]*[\"']?)"
            r"(?P<pscheme>(?:bearer|basic|digest)[ \t]+)?[^\s&,;\"'<>()\[\]{}]+"
            # Authorization header values on their own: "Bearer <token>", "Basic <base64>".
            r"|(?P<scheme>\b(?:bearer|basic)[ \t]+)(?P<cred>[A-Za-z0-9\-._~+/]{8,}=*)"
            # Passwords in URLs: scheme://user:password@host.
            r"|(?P<userinfo>://[^/\s:@]+:)[^/\s@]+(?=@)",
            re.IGNORECASE,
        )

    def is_secret_key(self, key: str) -> bool:
        """True when ``key`` names a secret (case- and ``-``/``_``-insensitive, substring match)."""
        cached = self._key_cache.get(key)
        if cached is not None:
            return cached
        normalized = _normalize(key)
        secret = any(word in normalized for word in self.secret_words)
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
        if "bearer" in lowered or "basic" in lowered:
            return self._pattern.sub(self._replace, text)
        if "=" in text or ":" in text:
            if "@" in text and "://" in text:
                return self._pattern.sub(self._replace, text)
            lowered = lowered.replace("-", "").replace("_", "")
            for word in self.secret_words:
                if word in lowered:
                    return self._pattern.sub(self._replace, text)
        return text

    def _replace(self, match: re.Match[str]) -> str:
        scheme = match.group("scheme")
        if scheme is not None:
            if not _looks_like_credential(match.group("cred")):
                return match.group(0)
            return scheme + REDACTED
        pair = match.group("pair")
        if pair is not None:
            return pair + (match.group("pscheme") or "") + REDACTED
        return match.group("userinfo") + REDACTED

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
            items = value
            if isinstance(value, (set, frozenset)):
                try:
                    items = sorted(value)
                except TypeError:
                    items = list(value)
            return [self.redact(item, depth + 1) for item in items]
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
