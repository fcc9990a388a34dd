"""The protobuf encoder writes byte for byte what it wrote before its columnar rewrite.

A mixed corpus (logging_config lines, CRI partials, invalid UTF-8, huge lines, text, broken JSON,
odd and out-of-range times, deep JSON, odd metadata values) is read by the real file source, goes
through the disk buffer's encoding, is grouped into streams, and is serialised by the production
encoder and by the frozen reference in ``_reference_encoder.py``.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shipper.event import Event, pack_events, unpack_events
from shipper.sinks.loki.encoder import ProtobufEncoder, StructuredMetadata
from shipper.sinks.loki.labels import CardinalityGuard, LabelRenderer
from shipper.sources.file.config import FileSourceConfig
from shipper.sources.file.source import FileSource
from tests.shipper.sinks.loki import _reference_encoder as reference
from tests.shipper.sinks.loki._corpus import LABELS, METADATA_SETS, POD_FILE, corpus


async def _read(root: Path, expect: int) -> list[Event]:
    cfg = FileSourceConfig.model_validate({
        "type": "file", "include": [f"{root}/containers/*.log"], "format": "cri", "max_line_bytes": 65536,
        "glob_interval_secs": 0.05, "poll_interval_secs": 0.01})
    got: list[Event] = []

    async def deliver(events: list[Event]) -> None:
        got.extend(events)

    src = FileSource("app", cfg, deliver, root / "source-data")
    task = asyncio.create_task(src.run())
    end = time.monotonic() + 10
    while len(got) < expect and time.monotonic() < end:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # partial groups flushed on their timeout
    await src.stop()
    await asyncio.wait_for(task, 5)
    src.close()
    return got


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> list[Event]:
    root = tmp_path_factory.mktemp("differential")
    (root / "containers").mkdir()
    lines = corpus(time.time_ns() - 60 * 10**9)
    (root / "containers" / POD_FILE).write_bytes(b"".join(lines))
    got = asyncio.run(_read(root, len(lines) - 4))
    assert len(got) == len(lines) - 4  # three partial groups of 3, 2 and 2 lines
    return got


def _both(events: list[Event], paths: list[str], batch: int) -> tuple[list[bytes], list[bytes]]:
    """The bodies of each batch: production encoder, reference (each with its own, equal, guard)."""
    new_enc = ProtobufEncoder(StructuredMetadata(paths))
    new_labels = LabelRenderer(LABELS, CardinalityGuard(40, max_values_per_pod=20))
    old_labels = LabelRenderer(LABELS, CardinalityGuard(40, max_values_per_pod=20))
    new: list[bytes] = []
    old: list[bytes] = []
    for i in range(0, len(events), batch):
        # As a sink reads them: out of the disk buffer, the record parsed again on demand.
        stored = pack_events(events[i:i + batch])
        new.append(new_enc.serialize(new_labels.group(unpack_events(stored))))
        old.append(reference.serialize(old_labels.group(unpack_events(stored)), paths))
    return new, old


@pytest.mark.parametrize("paths", METADATA_SETS, ids=["default", "mixed", "message", "none"])
@pytest.mark.parametrize("batch", [1, 37, 2000])
def test_push_bodies_are_byte_identical_to_the_reference(events: list[Event], paths: list[str], batch: int) -> None:
    new, old = _both(events, paths, batch)
    assert len(new) == len(old)
    for i, (a, b) in enumerate(zip(new, old, strict=True)):
        assert a == b, f"batch {i} differs"


def test_the_corpus_covers_what_the_encoder_treats_apart(events: list[Event]) -> None:
    raws = [e.raw for e in events]
    assert any("\udcff" in r or "\ufffd" in r or any(0xDC80 <= ord(c) <= 0xDCFF for c in r) for r in raws)
    assert any(len(r.encode("utf-8", "surrogatepass")) > 16384 for r in raws)
    assert any(e.meta.get("repaired") for e in events)
    assert len({e.ts_ns // 1_000_000 for e in events}) > 300


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(
    st.sampled_from(["request_id", "user_id", "level", "service", "kubernetes", "trace_id", "x"]),
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=False),
              st.text(max_size=200), st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2)),
    st.integers(-(2**63), 2**63 - 1)), min_size=1, max_size=30))
def test_records_with_any_values_encode_as_the_reference(items: list[tuple[str, Any, int]]) -> None:
    events = [Event({key: value, "n": i}, f"line {i}", ts, {"source": "app"} if i % 2 else
                    {"source": "app", "kubernetes": {"namespace": "n", "pod_name": f"p{i % 3}"}})
              for i, (key, value, ts) in enumerate(items)]
    paths = ["request_id", "user_id", "kubernetes.pod_name", "kubernetes", "x"]
    streams = LabelRenderer(LABELS, CardinalityGuard(500)).group(events)
    assert ProtobufEncoder(StructuredMetadata(paths)).serialize(streams) == reference.serialize(streams, paths)
