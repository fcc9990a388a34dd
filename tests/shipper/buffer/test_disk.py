import asyncio
import os
from pathlib import Path

import pytest

from shipper import metrics
from shipper.buffer import DiskBuffer
from shipper.event import Event
from tests.factories import numbered_event

pytestmark = pytest.mark.anyio


def _events(start: int, n: int, size: int = 50) -> list[Event]:
    return [numbered_event(i, raw="x" * size, meta={"id": str(i)}) for i in range(start, start + n)]


async def _drain(buf: DiskBuffer, ack: bool = True) -> list[int]:
    got: list[int] = []
    while buf._available():
        chunks = await buf.read(10_000, 1 << 30, 0.01)
        got.extend(e.record["n"] for c in chunks for e in c.events)
        if ack:
            buf.ack(chunks)
    return got


async def test_roundtrip_and_resume_after_restart(tmp_path: Path) -> None:
    buf = DiskBuffer(tmp_path, "t1", segment_bytes=64 * 1024)
    for i in range(0, 1000, 100):
        await buf.append(_events(i, 100))
    chunks = await buf.read(300, 1 << 30, 0.01)
    buf.ack(chunks)  # 300 delivered, 700 not
    await buf.close()
    assert [e.record["n"] for c in chunks for e in c.events] == list(range(300))

    buf = DiskBuffer(tmp_path, "t1", segment_bytes=64 * 1024)
    assert buf.pending_events == 700
    assert await _drain(buf) == list(range(300, 1000))
    assert buf.pending_events == 0
    await buf.close()
    # Delivered segments are deleted; only the current write segment(s) remain.
    assert len(list(tmp_path.glob("*.seg"))) <= 2


async def test_out_of_order_acks_only_move_contiguous_prefix(tmp_path: Path) -> None:
    buf = DiskBuffer(tmp_path, "t2")
    for i in range(3):
        await buf.append(_events(i * 10, 10))
    a = await buf.read(10, 1 << 30, 0)
    b = await buf.read(10, 1 << 30, 0)
    buf.ack(b)  # second record done first: position must not move yet
    await buf.close()
    buf2 = DiskBuffer(tmp_path, "t2")
    assert buf2.pending_events == 30
    await buf2.close()
    del a


async def test_corrupt_record_is_counted_and_skipped(tmp_path: Path) -> None:
    buf = DiskBuffer(tmp_path, "t3")
    for i in range(3):
        await buf.append(_events(i * 10, 10))
    await buf.close()
    seg = sorted(tmp_path.glob("*.seg"))[0]
    data = bytearray(seg.read_bytes())
    rec = len(data) // 3
    data[rec + 40] ^= 0xFF  # flip a byte inside the second record's payload
    seg.write_bytes(bytes(data))
    before = metrics.REGISTRY.get_sample_value("ecvi_shipper_buffer_corrupt_records_total", {"sink": "t3"}) or 0

    buf = DiskBuffer(tmp_path, "t3")
    got = await _drain(buf)
    await buf.close()
    assert got == list(range(10)) + list(range(20, 30))
    after = metrics.REGISTRY.get_sample_value("ecvi_shipper_buffer_corrupt_records_total", {"sink": "t3"})
    assert after == before + 1


async def test_torn_tail_is_skipped(tmp_path: Path) -> None:
    buf = DiskBuffer(tmp_path, "t4")
    await buf.append(_events(0, 10))
    await buf.append(_events(10, 10))
    await buf.close()
    seg = sorted(tmp_path.glob("*.seg"))[0]
    size = seg.stat().st_size
    os.truncate(seg, size - 7)  # a crash in the middle of the last write

    buf = DiskBuffer(tmp_path, "t4")
    got = await _drain(buf)
    await buf.append(_events(100, 1))  # writing continues in a fresh segment
    got += await _drain(buf)
    await buf.close()
    assert got == [*range(10), 100]


async def test_block_when_full_waits_for_acks(tmp_path: Path) -> None:
    buf = DiskBuffer(tmp_path, "t5", max_bytes=1024 * 1024)
    big = _events(0, 100, size=5000)  # ~500 KB per append
    await buf.append(big)
    await buf.append(big)
    blocked = asyncio.create_task(buf.append(big))
    await asyncio.sleep(0.1)
    assert not blocked.done()
    assert metrics.REGISTRY.get_sample_value("ecvi_shipper_buffer_blocked", {"sink": "t5"}) == 1
    chunks = await buf.read(100, 1 << 30, 0)
    buf.ack(chunks)
    await asyncio.wait_for(blocked, 2)
    assert blocked.result() is True
    await buf.close()


async def test_drop_newest_counts(tmp_path: Path) -> None:
    buf = DiskBuffer(tmp_path, "t6", max_bytes=1024 * 1024, when_full="drop_newest")
    big = _events(0, 100, size=5000)
    assert await buf.append(big)
    assert await buf.append(big)
    assert not await buf.append(big)
    await buf.close()
    dropped = metrics.REGISTRY.get_sample_value(
        "ecvi_shipper_events_dropped_total", {"component": "t6", "reason": "buffer_full"}
    )
    assert dropped == 100


@pytest.mark.parametrize("policy", ["always", "interval", "never"])
async def test_fsync_policies_roundtrip(tmp_path: Path, policy: str) -> None:
    buf = DiskBuffer(tmp_path, f"t7{policy}", fsync=policy)  # type: ignore[arg-type]
    await buf.append(_events(0, 5))
    buf.sync()
    got = await _drain(buf)
    await buf.close()
    assert got == list(range(5))
