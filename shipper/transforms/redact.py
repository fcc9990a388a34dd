"""The ``redact`` transform, and the screen that lets a line batch it would not change pass whole.

Redaction (``logging_config.Redactor``) changes a record only where a key names a secret, a string
holds a credential, or an object nests ``REDACT_MAX_DEPTH`` deep. Each of those needs text the batch's
lines show: a secret word among the letters of a key (case and ``-``/``_`` aside), an auth scheme,
a signed query, a URL with a password, or that many brackets on one line. JSON escapes turn into
characters that are neither letters nor ``-``/``_``, so they cannot make such a word, except
``\\u`` escapes, which the screen refuses. A batch whose text shows none of them goes on as a batch
(no event, no parse per line); any other batch is redacted event by event, as before.
"""

from __future__ import annotations

import re
from itertools import repeat

import orjson

from logging_config import DEFAULT_SECRET_WORDS, REDACT_MAX_DEPTH, Redactor
from shipper.event import Event
from shipper.lines import LineBatch

# Words whose presence anywhere in a lowered string sends it to the redaction patterns.
_SCHEME_WORDS = ("bearer", "basic", "token", "apikey")
_PLAIN_WORD = re.compile(r"[a-z0-9]+")


class Redact:
    """Redacts each event's record (a changed record gets a new ``raw``); :meth:`passes` screens
    line batches."""

    def __init__(self, extra_keys: list[str]) -> None:
        self.redactor = Redactor(extra_keys=extra_keys)
        words = (*self.redactor.secret_words, *DEFAULT_SECRET_WORDS)
        # A configured key with other characters than letters and digits: no batch is screened.
        self._words: tuple[str, ...] | None = words if all(_PLAIN_WORD.fullmatch(w) for w in words) else None

    def __call__(self, events: list[Event]) -> list[Event]:
        redact = self.redactor.redact
        for e in events:
            red = redact(e.record)
            if red != e.record:
                e.record = red
                e.raw = orjson.dumps(red, default=str).decode()
        return events

    def passes(self, batch: LineBatch) -> bool:
        """True if redaction would change no line of ``batch`` (False: it may)."""
        if self._words is None:
            return False
        try:
            text = batch.data.decode()
        except UnicodeDecodeError:
            return False
        if "\\u" in text:
            return False
        lowered = text.lower()
        if any(w in lowered for w in _SCHEME_WORDS):
            return False
        if "?" in text and ("key=" in lowered or "sig" in lowered):
            return False
        if "@" in text and (":/" in text or ":\\/" in text):  # "://", also written ":\/\/" or ":/\/"
            return False
        squashed = lowered.replace("-", "").replace("_", "")
        if any(w in squashed for w in self._words):
            return False
        # Nesting REDACT_MAX_DEPTH deep takes more brackets than that on one line.
        lines = batch.lines()
        braces = max(map(bytes.count, lines, repeat(b"{")), default=0)
        brackets = max(map(bytes.count, lines, repeat(b"[")), default=0)
        return braces + brackets < REDACT_MAX_DEPTH
