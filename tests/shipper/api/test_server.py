"""The API server: bounded connections (timeout, cap with eviction of idle ones) and one-line bind errors."""

from __future__ import annotations

import errno
import socket
import time
import urllib.request

import pytest

from shipper import metrics
from shipper.api.health import Health
from shipper.api.server import ApiServer, bind_problem, describe_bind_error
from shipper.errors import StartupError


def _metrics_status(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as r:
        r.read()
        return int(r.status)


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def test_idle_connections_past_the_cap_do_not_lock_out_a_scrape() -> None:
    api = ApiServer("127.0.0.1:0", Health(), timeout_secs=30, max_connections=4)
    api.start()
    idle = [_connect(api.port) for _ in range(10)]
    try:
        idle[-1].sendall(b"GET /metr")  # a trickling client is no better than a silent one
        started = time.monotonic()
        assert _metrics_status(api.port) == 200
        assert time.monotonic() - started < 2
        # The oldest idle connections were closed to make room; a closed one reads EOF at once.
        idle[0].settimeout(2)
        assert idle[0].recv(1) == b""
    finally:
        for s in idle:
            s.close()
        api.stop()


def test_an_idle_connection_is_closed_after_the_timeout() -> None:
    api = ApiServer("127.0.0.1:0", Health(), timeout_secs=0.5)
    api.start()
    try:
        with _connect(api.port) as s:
            s.settimeout(5)
            started = time.monotonic()
            assert s.recv(1) == b""
            assert 0.4 < time.monotonic() - started < 3
        assert _metrics_status(api.port) == 200
    finally:
        api.stop()


def test_api_up_metric_follows_the_server() -> None:
    api = ApiServer("127.0.0.1:0", Health())
    api.start()
    assert metrics.REGISTRY.get_sample_value("ecvi_shipper_component_up", {"component": "api"}) == 1
    api.stop()
    assert metrics.REGISTRY.get_sample_value("ecvi_shipper_component_up", {"component": "api"}) == 0


def test_an_address_in_use_is_one_line_naming_the_key() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(StartupError) as info:
            ApiServer(address, Health())
        assert str(info.value) == f"api.address: {address} is in use"
        assert bind_problem(address) == f"{address} is in use"
    assert bind_problem("127.0.0.1:0") is None


def test_bind_errors_in_an_operators_words() -> None:
    unresolvable = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert describe_bind_error("nowhere:9100", unresolvable) == (
        "nowhere:9100: cannot resolve the host (Name or service not known)")
    assert describe_bind_error("10.9.9.9:9100", OSError(errno.EADDRNOTAVAIL, "x")) == (
        "10.9.9.9:9100 is not an address of this host")
