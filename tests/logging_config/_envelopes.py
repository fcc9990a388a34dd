"""A local HTTP endpoint that receives Sentry envelopes, for the SDK's real transport.

No Sentry server runs here, so the tests point a DSN at this: ``http://public@127.0.0.1:PORT/42``.
It answers every POST with 200 and keeps each envelope's raw (decompressed) bytes and its items
parsed per the envelope format: a JSON header line, then items of a JSON header line and a
payload (``length`` bytes when the item header gives it, else up to the next newline).
"""

from __future__ import annotations

import gzip
import json
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Envelope:
    raw: bytes
    header: dict[str, Any]
    items: list[tuple[dict[str, Any], bytes]] = field(default_factory=list)

    def payloads(self, item_type: str) -> list[dict[str, Any]]:
        return [json.loads(payload) for header, payload in self.items if header.get("type") == item_type]


def parse_envelope(body: bytes) -> Envelope:
    header_line, _, rest = body.partition(b"\n")
    envelope = Envelope(body, json.loads(header_line))
    while rest.strip():
        item_line, _, rest = rest.partition(b"\n")
        item_header = json.loads(item_line)
        length = item_header.get("length")
        if length is None:
            payload, _, rest = rest.partition(b"\n")
        else:
            payload, rest = rest[:length], rest[length:].removeprefix(b"\n")
        envelope.items.append((item_header, payload))
    return envelope


def _decode(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "br":
        import brotli  # type: ignore[import-not-found]

        data: bytes = brotli.decompress(body)
        return data
    assert encoding in ("", "identity"), f"unexpected Content-Encoding {encoding!r}"
    return body


class EnvelopeServer:
    """Threaded receiver on 127.0.0.1; ``envelopes`` grows as the SDK sends."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.paths: list[str] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                data = _decode(body, self.headers.get("Content-Encoding", ""))
                with server._lock:
                    server.paths.append(self.path)
                    server.envelopes.append(parse_envelope(data))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.dsn = f"http://public@127.0.0.1:{self.port}/42"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def start(self) -> EnvelopeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def clear(self) -> None:
        with self._lock:
            self.envelopes.clear()

    def items(self, item_type: str) -> list[dict[str, Any]]:
        with self._lock:
            envelopes = list(self.envelopes)
        return [payload for envelope in envelopes for payload in envelope.payloads(item_type)]

    def raw(self) -> bytes:
        with self._lock:
            return b"\n".join(envelope.raw for envelope in self.envelopes)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, "Sentry envelopes did not arrive in time"
            time.sleep(0.02)
