"""The mixed corpus the Loki differential tests read: every kind of line the encoders must agree on."""

from __future__ import annotations

import json
from typing import Any

from tests.factories import cri_time, iso_ms
from tests.reliability._poison_lines import (
    BAD_UTF8,
    CRI_TIMES,
    ODD_VALUES,
    TIME_KEYS,
    TIME_VALUES,
    nest,
)

LABELS = {"service": "{{ service }}", "level": "{{ level }}", "namespace": "{{ kubernetes.namespace }}"}
METADATA_SETS = [
    ["request_id", "user_id", "company_id", "trace_id", "kubernetes.pod_name"],  # the default
    ["level", "duration_ms", "exception.type", "kubernetes.namespace", "kubernetes", "stream", "file"],
    ["message"],
    [],
]
POD_FILE = "api-7d9f_prod_api-" + "a" * 64 + ".log"
METADATA_VALUES: tuple[Any, ...] = (*ODD_VALUES, "é" * 70, "x" * 127, "y" * 128, "\u2603", "\ud800", 0, False)


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")


def _good(n: int, ts_ns: int) -> dict[str, Any]:
    rec: dict[str, Any] = {"timestamp": iso_ms(ts_ns), "level": "ERROR" if n % 7 == 0 else "INFO",
                           "logger": "app.orders", "message": f"line {n}", "request_id": f"{n:032x}",
                           "user_id": f"user-{n % 5}", "company_id": f"c-{n}", "service": f"svc{n % 3}",
                           "duration_ms": n * 1.5}
    if n % 11 == 5:
        rec["kubernetes.pod_name"] = f"dotted-{n}"  # a key holding dots, read where no pod metadata is
    if n % 4 == 0:
        rec["exception"] = {"type": "Boom", "message": "x", "stacktrace": "Traceback\n  line 1"}
    return rec


def corpus(now_ns: int) -> list[bytes]:
    """CRI lines (each ending in a newline) of every kind the differential test covers."""
    ts = cri_time(now_ns)
    # Every ninth good line on stderr: one read holds both streams of the container.
    out = [ts.encode() + (b" stderr F " if n % 9 == 4 else b" stdout F ") + _json(_good(n, now_ns + n * 1_000_000))
           + b"\n" for n in range(300)]
    out += [ts.encode() + (b" stderr F " if n % 2 == 0 else b" stdout F ") + _json(_good(n, now_ns)) + b"\n"
            for n in range(300, 320)]  # one ms, both streams
    # A record split by the runtime into partials, text partials, and a partial cut at a UTF-8 sequence.
    rec = _json(_good(900, now_ns))
    out += [ts.encode() + b" stdout P " + rec[:40] + b"\n", ts.encode() + b" stdout P " + rec[40:90] + b"\n",
            ts.encode() + b" stdout F " + rec[90:] + b"\n"]
    out += [ts.encode() + b" stderr P Traceback (most recent call last):\n",
            ts.encode() + b" stderr F   File \"x.py\", line 1\n"]
    out += [ts.encode() + b" stdout P caf\xc3\n", ts.encode() + b" stdout F \xa9 done\n"]
    for junk in BAD_UTF8:
        out.append(ts.encode() + b' stdout F {"level":"W' + junk + b'","request_id":"r' + junk + b'","service":"u"}\n')
        out.append(ts.encode() + b" stdout F text " + junk + b" line\n")
    out += [ts.encode() + b" stdout F " + b"z" * 20000 + b"\n",
            ts.encode() + b' stdout F {"service":"huge","request_id":"' + b"r" * 20000 + b'"}\n',
            ts.encode() + b" stdout F " + b"t" * 70000 + b"\n",  # truncated
            ts.encode() + b" stdout F not json at all\n", ts.encode() + b" stdout F {broken\n",
            ts.encode() + b' stdout F {"level":"a","x":1e400}\n', ts.encode() + b' stdout F ["a","b"]\n',
            ts.encode() + b' stdout F  {"level":"lead-space"}\n', ts.encode() + b' stdout F {"level":"a"} \n',
            ts.encode() + b' stdout F {"level":"a","level":"b","service":1,"service":"s"}\n',
            ts.encode() + b' stdout F {"le\\u0076el":"esc","request_id":"\\ud800"}\n',
            ts.encode() + b' stdout F {"kubernetes":{"pod_name":"forged","namespace":"payments"},"level":"k"}\n']
    for key in TIME_KEYS:
        for value in TIME_VALUES:
            out.append(ts.encode() + b' stdout F {"' + key.encode() + b'":' + value.encode() + b',"level":"t"}\n')
    out += [t.encode() + b" stdout F odd cri time\n" for t in CRI_TIMES]
    for depth in (150, 199, 200, 201, 400):
        for shape in ("list", "dict", "mixed"):
            out.append(ts.encode() + b' stdout F {"level":"deep","request_id":' + nest(depth, shape) + b"}\n")
    for i, value in enumerate(METADATA_VALUES):
        for key in ("request_id", "level", "service", "kubernetes", "exception", "duration_ms"):
            body = b'{"message":"odd ' + str(i).encode() + b'",' + _json(key) + b":" + _json(value) + b"}"
            out.append(ts.encode() + b" stdout F " + body + b"\n")
    return out
