"""``ecvi-logs tap`` start-up failures are one line naming the key, like ``ship``'s."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from shipper.config import parse_config
from shipper.errors import StartupError
from shipper.tap import run_tap


@pytest.mark.anyio
async def test_tap_with_a_forward_address_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        config = parse_config(f"""
data_dir: {tmp_path}/data
sources:
  app: {{type: file, include: ["{tmp_path}/*.log"]}}
  fwd: {{type: forward, address: "{address}"}}
sinks:
  out: {{type: file, inputs: [app, fwd], path: "{tmp_path}/out.ndjson"}}
""", env={})
        with pytest.raises(StartupError) as info:
            await asyncio.wait_for(run_tap(config, None, 1), 10)
    assert str(info.value) == f"sources.fwd.address: {address} is in use"


def test_tap_cli_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from shipper.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        config = tmp_path / "shipper.yaml"
        config.write_text(f"""
data_dir: {tmp_path}/data
sources:
  fwd: {{type: forward, address: "{address}"}}
sinks:
  out: {{type: file, inputs: [fwd], path: "{tmp_path}/out.ndjson"}}
""")
        result = CliRunner().invoke(main, ["tap", "--config", str(config), "--limit", "1"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert f"sources.fwd.address: {address} is in use" in result.output
