"""Direct shipping to a Fluent forward input: the same record arrives; a down shipper costs nothing."""

from __future__ import annotations

import logging
import socket
import socketserver
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgpack
import pytest

import logging_config
from logging_config.fluent import FluentForwardHandler

from .conftest import Output, check_record

log = logging.getLogger("app.ship")


class _ForwardServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _ForwardHandler)
        self.events: list[tuple[str, Any, dict[str, Any]]] = []
        self.lock = threading.Lock()


class _ForwardHandler(socketserver.BaseRequestHandler):
    """Decodes Fluent forward "Message" mode entries: [tag, time, record]."""

    server: _ForwardServer

    def handle(self) -> None:
        unpacker = msgpack.Unpacker(raw=False)
        while chunk := self.request.recv(65536):
            unpacker.feed(chunk)
            for tag, event_time, record in unpacker:
                with self.server.lock:
                    self.server.events.append((tag, event_time, record))


@contextmanager
def running_server(port: int = 0) -> Iterator[_ForwardServer]:
    server = _ForwardServer(port)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def forward_server() -> Iterator[_ForwardServer]:
    with running_server() as server:
        yield server


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # closed again: nothing listens there


def _wait_for(server: _ForwardServer, count: int, timeout: float = 5.0) -> list[tuple[str, Any, dict[str, Any]]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with server.lock:
            if len(server.events) >= count:
                return list(server.events)
        time.sleep(0.01)
    raise AssertionError(f"expected {count} events, got {len(server.events)}")


def test_records_arrive_as_the_same_dicts_as_stdout(forward_server: _ForwardServer, configure_output: Any) -> None:
    port = forward_server.server_address[1]
    output: Output = configure_output(fluent={"host": "127.0.0.1", "port": port})
    logging_config.bind(request_id="r-1", user_id="u-1")
    log.info("Company created", extra={"plan": "pro", "password": "pw"})
    try:
        raise ValueError("multi\nline")
    except ValueError:
        log.exception("failed")

    events = _wait_for(forward_server, 2)
    stdout_records = output.records()
    assert [record for _, _, record in events] == stdout_records
    for tag, event_time, record in events:
        check_record(record)
        assert tag == "ecvi.ecvi-api"
        assert isinstance(event_time, msgpack.ExtType) and event_time.code == 0  # Fluent EventTime
        seconds, nanos = struct.unpack(">II", event_time.data)
        assert record["timestamp"].startswith(time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
        assert 0 <= nanos < 10**9
    assert events[0][2]["password"] == "[REDACTED]"
    assert events[1][2]["exception"]["message"] == "multi\nline"


def test_custom_tag(forward_server: _ForwardServer, configure_output: Any) -> None:
    configure_output(fluent={"host": "127.0.0.1", "port": forward_server.server_address[1], "tag": "ecvi.custom"})
    log.warning("tagged")
    [(tag, _, _)] = _wait_for(forward_server, 1)
    assert tag == "ecvi.custom"


def test_nothing_listening_never_blocks_or_breaks_logging(configure_output: Any) -> None:
    output: Output = configure_output(fluent={"host": "127.0.0.1", "port": _free_port(), "queue_maxsize": 100})
    started = time.perf_counter()
    for n in range(1000):
        log.info("while the shipper is down", extra={"n": n})
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, f"1000 records took {elapsed:.3f}s"
    assert len(output.records()) == 1000  # stdout, the durable path, has every line

    started = time.perf_counter()
    configure_output()  # replacing the setup closes the fluent handler
    assert time.perf_counter() - started < 3.0


def test_records_flow_again_once_the_shipper_is_back(configure_output: Any) -> None:
    port = _free_port()
    configure_output(fluent={"host": "127.0.0.1", "port": port, "retry_interval": 0.1})
    log.info("while down")
    time.sleep(0.05)  # the sender thread has failed to connect by now
    with running_server(port) as server:
        time.sleep(0.15)  # past the retry interval
        log.info("back up")
        messages = [record["message"] for _, _, record in _wait_for(server, 2)]
    assert messages == ["while down", "back up"]  # kept in the sender's buffer meanwhile


def test_emit_does_not_wait_for_a_stalled_shipper() -> None:
    """A peer that accepts but never reads: the sender thread blocks, emit does not."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    handler = FluentForwardHandler("127.0.0.1", listener.getsockname()[1], queue_maxsize=50, timeout=0.5)
    logger = logging.getLogger("app.ship.stalled")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        started = time.perf_counter()
        for n in range(2000):
            logger.warning("x" * 2048, extra={"n": n})
        assert time.perf_counter() - started < 2.0
    finally:
        logger.removeHandler(handler)
        started = time.perf_counter()
        handler.close()
        assert time.perf_counter() - started < handler.close_timeout + 1.5
        listener.close()


def test_handler_recovers_its_sender_after_fork() -> None:
    handler = FluentForwardHandler("127.0.0.1", _free_port())
    try:
        assert handler.sender is not None
        from logging_config import fluent

        fluent._after_fork_in_child()
        assert handler._sender is None  # a new sender (and thread) is made on next use
    finally:
        handler.close()
