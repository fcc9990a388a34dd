"""Start-up failures are one line naming the key (StartupError), never a traceback, and undo themselves."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from shipper.config import ShipperConfig, parse_config
from shipper.errors import StartupError
from shipper.runner import run_shipper
from shipper.topology import Topology

pytestmark = pytest.mark.anyio


def _config(tmp: Path, data_dir: str | None = None, api: str = "127.0.0.1:0", sources: str = "") -> ShipperConfig:
    (tmp / "logs").mkdir(exist_ok=True)
    return parse_config(f"""
data_dir: {data_dir or tmp / "data"}
api: {{address: "{api}"}}
shutdown_timeout_secs: 2
sources:
  app: {{type: file, include: ["{tmp}/logs/*.log"], format: json}}{sources}
sinks:
  out: {{type: file, inputs: [app{", fwd" if sources else ""}], path: "{tmp}/out.ndjson"}}
""", env={})


def _listening() -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s


async def _run(config: ShipperConfig) -> str:
    with pytest.raises(StartupError) as info:
        await asyncio.wait_for(run_shipper(config), 20)
    message = str(info.value)
    assert "\n" not in message
    return message


async def test_data_dir_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    message = await _run(_config(tmp_path, data_dir=f"{tmp_path}/afile/data"))
    assert message == f"data_dir: {tmp_path}/afile/data is not a directory"


async def test_data_dir_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    message = await _run(_config(tmp_path, data_dir=f"{tmp_path}/afile"))
    assert message == f"data_dir: {tmp_path}/afile is not a directory"


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs /proc")
async def test_data_dir_in_proc(tmp_path: Path) -> None:
    assert (await _run(_config(tmp_path, data_dir="/proc/ecvi-logs-data"))).startswith("data_dir: ")


async def test_api_port_in_use(tmp_path: Path) -> None:
    with _listening() as taken:
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        assert await _run(_config(tmp_path, api=address)) == f"api.address: {address} is in use"


async def test_forward_port_in_use_releases_what_started(tmp_path: Path) -> None:
    with _listening() as taken:
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        fwd = f'\n  fwd: {{type: forward, address: "{address}"}}'
        config = _config(tmp_path, sources=fwd)
        assert await _run(config) == f"sources.fwd.address: {address} is in use"
    # Nothing was left holding the data_dir or the API: the same config starts once the port is free.
    config = _config(tmp_path, sources='\n  fwd: {type: forward, address: "127.0.0.1:0"}')

    topo = Topology(config)
    await topo.start()
    await topo.stop()


async def test_a_second_topology_on_one_data_dir_is_refused(tmp_path: Path) -> None:
    config = _config(tmp_path)

    first = Topology(config)
    await first.start()
    try:
        with pytest.raises(StartupError) as info:
            await Topology(config).start()
        assert str(info.value) == f"data_dir: {tmp_path}/data is in use by another shipper (pid {os.getpid()})"
    finally:
        await first.stop()
    again = Topology(config)  # the lock went with the first one
    await again.start()
    await again.stop()


async def test_a_second_shipper_on_one_data_dir_is_refused(tmp_path: Path) -> None:
    config = _config(tmp_path)

    first = asyncio.create_task(run_shipper(config))
    await asyncio.sleep(0.5)
    assert not first.done()
    with pytest.raises(StartupError, match=r"^data_dir: .* is in use by another shipper"):
        await run_shipper(config)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
