"""Sent request bodies are released at once, not left to the cyclic garbage collector."""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from shipper.sinks._common.http import post_body

pytestmark = pytest.mark.anyio

BODY_SIZE = 1 << 20


class _Handler(BaseHTTPRequestHandler):
    seen: list[tuple[str | None, str | None, int]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        self.seen.append((self.headers.get("Content-Length"), self.headers.get("Transfer-Encoding"), len(body)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _Handler.seen = []
    yield f"http://127.0.0.1:{httpd.server_address[1]}/push"
    httpd.shutdown()
    httpd.server_close()


def _bodies_held() -> int:
    """Bodies of BODY_SIZE bytes that garbage-collected objects still refer to."""
    return len({id(r) for o in gc.get_objects() for r in gc.get_referents(o)
                if type(r) is bytes and len(r) == BODY_SIZE})


async def _post_many(url: str, plain: bool) -> int:
    gc.collect()
    gc.disable()  # what a long gen-0 interval does between collections
    try:
        async with httpx.AsyncClient() as client:
            for i in range(5):
                body = bytes([i]) * BODY_SIZE
                if plain:
                    response = await client.post(url, content=body)
                else:
                    response = await post_body(client, url, body, {"Content-Type": "application/x-protobuf"})
                assert response.status_code == 204
                del body, response
            return _bodies_held()
    finally:
        gc.enable()


async def test_post_body_sends_a_sized_body_and_keeps_none(server: str) -> None:
    assert await _post_many(server, plain=False) == 0
    assert _Handler.seen == [(str(BODY_SIZE), None, BODY_SIZE)] * 5  # Content-Length, never chunked


async def test_a_plain_post_keeps_its_bodies_until_a_collection(server: str) -> None:
    """Why post_body exists: the response/stream cycle of httpx holds every body sent."""
    assert await _post_many(server, plain=True) == 5


class _CountingFinder:
    """A meta path finder that only counts the module searches it sees."""

    def __init__(self) -> None:
        self.searched: list[str] = []

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        self.searched.append(name)


async def test_a_request_searches_for_no_module(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """httpcore imports sniffio on every request; a missing one costs a failed import search each time."""
    finder = _CountingFinder()
    async with httpx.AsyncClient() as client:
        await post_body(client, server, b"warm-up", {})
        monkeypatch.setattr(sys, "meta_path", [finder, *sys.meta_path])
        for _ in range(3):
            await post_body(client, server, b"x" * 100, {})
    assert finder.searched == []
