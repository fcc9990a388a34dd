"""Line batches the redact transform would not change pass it whole; any other batch is redacted.

The screen must never pass a batch in which redaction would change a line: checked on a corpus of
what redaction catches (in keys, values, plain text, behind JSON escapes, deep nesting) and on
generated records mixing secret-looking and harmless words.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench._records import records
from shipper.event import Event
from shipper.lines import Item, LineBatch, flatten
from shipper.topology import apply_chain, apply_chain_items
from shipper.transforms.redact import Redact

REDACT = Redact([])

CAUGHT = [
    '{"password":"hunter2"}',
    '{"db":{"PASS-WORD":"x"}}',
    '{"Authorization":"Bearer abcdefgh12345678"}',
    '{"message":"calling with token=abcdefgh12345678"}',
    '{"url":"https://user:s3cret@db.example/x"}',
    '{"url":"https:\\/\\/user:s3cret@db.example\\/x"}',
    '{"url":"https:/\\/user:s3cret@db.example/x"}',
    '{"link":"https://store/obj?X-Amz-Signature=abcdef"}',
    '{"pass\\u0077ord":"hidden behind an escape"}',
    '{"headers":[["cookie","a=b"]]}',
    '{"basicAuth":"x"}',
    '{"DB_PWD":"x"}',
    "plain text with Bearer abcdefgh12345678",
    "db_password=hunter2",
    '{"a":' * 40 + "1" + "}" * 40,
]
HARMLESS = [
    '{"level":"INFO","message":"Company verification finished","user_id":"user-1"}',
    '{"owner":"Jane","path":"/app/app/services/verification.py","n":[1,[2,{"k":"v"}]]}',
    "a plain line of text",
    '{"exception":{"type":"Boom","stacktrace":"Traceback\\n  File \\"x.py\\", line 1"}}',
]


def _batch(lines: list[str]) -> LineBatch:
    data = "".join(line + "\n" for line in lines).encode()
    offsets = [i * 1000 for i in range(len(lines))]
    return LineBatch({"source": "app", "file": "/var/log/app.log"}, "uid", data, offsets,
                     [1_700_000_000_000_000_000 + i for i in range(len(lines))], ["stdout"] * len(lines))


def _changes(line: str) -> bool:
    (e,) = _batch([line]).events()
    return bool(REDACT.redactor.redact(e.record) != e.record)


def test_every_caught_line_is_refused_and_would_change() -> None:
    for line in CAUGHT:
        assert _changes(line), line
        assert not REDACT.passes(_batch([line])), line
        assert not REDACT.passes(_batch([*HARMLESS, line])), line


def test_harmless_lines_and_the_benchmark_records_pass() -> None:
    assert REDACT.passes(_batch(HARMLESS))
    bench = [orjson.dumps(r).decode() for r in records(2000)]
    assert REDACT.passes(_batch(bench))
    assert not any(_changes(line) for line in [*HARMLESS, *bench[:200]])


def test_the_screen_is_coarser_than_redaction() -> None:
    """"author" is no secret to redaction, but holds "auth": the batch takes the event path."""
    assert not _changes('{"author":"Jane"}') and not REDACT.passes(_batch(['{"author":"Jane"}']))


def test_a_configured_key_that_is_not_a_plain_word_screens_nothing() -> None:
    assert not Redact(["x/token"]).passes(_batch(HARMLESS))
    assert not Redact(["tenant"]).passes(_batch(['{"tenant":"acme"}']))


_WORDS = st.sampled_from(["pass", "word", "Word", "tok", "en", "auth", "or", "pwd", "key", "sig", "api",
                          "bear", "er", "basic", "secret", "cook", "ie", "session", "id", "x", "-", "_",
                          "://", "@", "?", "=", ":", " ", "/", "\\", "\u212a", "é", "\n"])
_TEXT = st.lists(_WORDS, max_size=6).map("".join)
_VALUES = st.recursive(st.one_of(_TEXT, st.integers(-(2**63), 2**63 - 1), st.booleans(), st.none()),
                       lambda inner: st.one_of(st.lists(inner, max_size=3),
                                               st.dictionaries(_TEXT, inner, max_size=3)),
                       max_leaves=8)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.dictionaries(_TEXT, _VALUES, max_size=4), _TEXT.filter(lambda t: "\n" not in t)),
                min_size=1, max_size=5))
def test_a_batch_that_passes_holds_no_line_redaction_would_change(lines: list[Any]) -> None:
    texts = [line if isinstance(line, str) else orjson.dumps(line).decode() for line in lines]
    texts = [t for t in texts if t]
    if texts and REDACT.passes(_batch(texts)):
        assert not any(_changes(t) for t in texts), texts


def test_a_chain_keeps_passing_batches_and_redacts_the_rest_in_order() -> None:
    ok1, secret, ok2 = _batch(HARMLESS), _batch([HARMLESS[0], CAUGHT[0]]), _batch(HARMLESS[::-1])
    alone = Event(None, CAUGHT[2], 5, {"source": "app"})
    items: list[Item] = [ok1, alone, secret, ok2]
    out = apply_chain_items((REDACT,), items)
    assert out[0] is ok1 and out[-1] is ok2
    assert all(type(x) is Event for x in out[1:-1])
    by_events = apply_chain((REDACT,), flatten(items))
    got = flatten(out)
    assert [(e.raw, e.ts_ns, e.meta) for e in got] == [(e.raw, e.ts_ns, e.meta) for e in by_events]
    assert '"[REDACTED]"' in got[len(HARMLESS) + 2].raw and "hunter2" not in "".join(e.raw for e in got)


def test_a_copy_stays_derived_until_a_transform_changes_its_record() -> None:
    """What the buffer stores: a derived event only its raw line, any other its record too."""
    from shipper.event import pack_events, unpack_events
    from shipper.transforms import build_transform
    from shipper.transforms.config import AddFieldsConfig

    add = build_transform(AddFieldsConfig.model_validate({"type": "add_fields", "inputs": ["app"],
                                                          "fields": {"cluster": "eu-1"}}))
    plain, secret = _batch([HARMLESS[0]]).events()[0], _batch([CAUGHT[0]]).events()[0]
    kept, redacted = apply_chain((REDACT,), [plain, secret])
    assert kept.derived and not redacted.derived
    (added,) = unpack_events(pack_events(apply_chain((REDACT, add), [plain])))
    assert added.record["cluster"] == "eu-1" and "cluster" not in added.raw
