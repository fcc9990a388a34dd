"""A sink fed records that its batch limits do not divide sends full batches, not a short one per record."""

import asyncio
from pathlib import Path

import pytest

from shipper.buffer import DiskBuffer
from shipper.event import Event
from shipper.lines import LineBatch
from shipper.sinks._common.base import Sink
from shipper.sinks._common.config import SinkConfigBase
from shipper.sinks._common.driver import SinkDriver
from shipper.sinks._common.outcome import SendOutcome

pytestmark = pytest.mark.anyio


class LineCounter(Sink):
    """Accepts everything; remembers how many lines each request held."""

    accepts_lines = True

    def __init__(self) -> None:
        super().__init__("rounding", None, "")
        self.requests: list[int] = []
        self.lines: list[bytes] = []

    async def send(self, events: list[Event]) -> SendOutcome:
        raise AssertionError("line batches only")

    async def send_lines(self, batches: list[LineBatch]) -> SendOutcome | None:
        self.requests.append(sum(map(len, batches)))
        self.lines.extend(line for b in batches for line in b.lines())
        return SendOutcome.ok()


def _batch(first: int, n: int) -> LineBatch:
    lines = [b'{"n":%d}' % i for i in range(first, first + n)]
    return LineBatch({"source": "app"}, "u", b"\n".join([*lines, b""]), list(range(first, first + n)),
                     [1_700_000_000_000_000_000 + i for i in range(first, first + n)], ["stdout"] * n)


async def test_records_of_2400_lines_go_in_requests_of_2000(tmp_path: Path) -> None:
    cfg = SinkConfigBase.model_validate({
        "inputs": ["x"], "healthcheck": False, "batch": {"max_events": 2000, "timeout_secs": 0.05},
        "request": {"concurrency": 1}})
    sink = LineCounter()
    buf = DiskBuffer(tmp_path, "rounding")
    for i in range(10):  # as a file source writes them: one record per read of the file
        await buf.append([_batch(i * 2400, 2400)])
    drv = SinkDriver(sink, buf, cfg, str(tmp_path))
    await drv.start()
    loop = asyncio.get_running_loop()
    end = loop.time() + 10
    while buf.pending_events and loop.time() < end:
        await asyncio.sleep(0.01)
    await drv.stop(1)
    assert sink.lines == [b'{"n":%d}' % i for i in range(24_000)]
    # Cut per record, the same lines went as 20 requests (2000 and 400, ten times). Rounded up,
    # each read holds four records (9,600 lines: four batches' worth is 8,000) but the last.
    assert sink.requests == [2000, 2000, 2000, 2000, 1600] * 2 + [2000, 2000, 800]
