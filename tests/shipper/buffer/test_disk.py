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


async def _records(buf: DiskBuffer, sizes: list[int]) -> None:
    n = 0
    for size in sizes:
        await buf.append(_events(n, size))
        n += size


async def test_a_rounded_up_read_takes_written_records_until_the_limits_divide_it(tmp_path: Path) -> None:
    buf = DiskBuffer(tmp_path, "round")
    await _records(buf, [5] * 8)
    plain = await buf.read(4, 1 << 30, 0)
    assert [c.count for c in plain] == [5]  # a batch of 4, then one of 1
    rounded = await buf.read(4, 1 << 30, 0, round_up=True)
    assert [c.count for c in rounded] == [5, 5, 5, 5]  # 20: five batches of 4
    buf.ack(plain + rounded)
    assert buf.pending_events == 15
    await buf.close()


async def test_only_a_read_of_one_record_over_the_limits_is_rounded_up(tmp_path: Path) -> None:
    buf = DiskBuffer(tmp_path, "round-small")
    await _records(buf, [3] * 6)
    # Two records reached the limit of 4: records smaller than a batch are left as they are.
    assert [c.count for c in await buf.read(4, 1 << 30, 0, round_up=True)] == [3, 3]
    await buf.close()


async def test_a_rounded_up_read_never_waits_and_rounds_only_a_read_that_reached_a_limit(tmp_path: Path) -> None:
    buf = DiskBuffer(tmp_path, "round-wait")
    await _records(buf, [5])
    # 5 reached the limit of 4; nothing more is written: back at once, not after the timeout.
    chunks = await asyncio.wait_for(buf.read(4, 1 << 30, 30, round_up=True), 2)
    assert [c.count for c in chunks] == [5]
    await _records(buf, [3])
    # Under the limits after its timeout: nothing to round.
    assert [c.count for c in await buf.read(10, 1 << 30, 0.05, round_up=True)] == [3]
    await buf.close()


async def test_a_rounded_up_read_stops_at_its_bounds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from shipper.buffer import rounding

    buf = DiskBuffer(tmp_path, "round-bounds")
    await _records(buf, [7] * 8)
    # 7, 14, 21 leave 3, 2, 1 of a batch of 4: 21 is past four batches' worth (16).
    assert [c.count for c in await buf.read(4, 1 << 30, 0, round_up=True)] == [7, 7, 7]
    one = (await buf.read(1, 1 << 30, 0))[0].size
    # By bytes: no more than ROUND_UP_BYTES past max_bytes.
    monkeypatch.setattr(rounding, "ROUND_UP_BYTES", one)
    chunks = await buf.read(1 << 20, one * 3 // 4, 0, round_up=True)
    assert len(chunks) == 2  # a record is over max_bytes; the second takes the read past the bound
    await buf.close()


def test_rounding_follows_the_limit_that_cuts_first() -> None:
    from shipper.buffer.rounding import wants_more

    mib = 1 << 20
    # 2,400 events in 0.95 MiB against 2,000 / 1 MiB: the events limit cuts, leaving 400 (20 %).
    assert wants_more(2400, 950_000, 2000, mib)
    assert not wants_more(4000, 1_900_000, 2000, mib)  # two whole batches by events
    # 100 events in 1.95 MiB against 1,000 / 1 MiB: bytes cut; 0.95 MiB left is over 90 % of a batch.
    assert not wants_more(100, int(1.95 * mib), 1000, mib)
    assert wants_more(100, int(1.5 * mib), 1000, mib)
    assert not wants_more(8000, 100, 2000, mib)  # four batches' worth: the bound
    assert not wants_more(10, mib + (4 << 20), 1000, mib)  # 4 MiB past max_bytes: the bound
