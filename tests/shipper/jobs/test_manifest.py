from datetime import UTC, datetime

import orjson
import pytest

from shipper import __version__
from shipper.archive.layout import manifest_key
from shipper.archive.manifest import ObjectEntry, build_manifest, parse_manifest
from shipper.errors import ManifestError

from ._support import DAY, DAY_END, DAY_START


def _entry(key: str, events: int = 10, lo: int = DAY_START, hi: int = DAY_START + 5) -> ObjectEntry:
    return ObjectEntry(key=key, unit=key.split("/")[0], events=events, bytes=100, uncompressed_bytes=1000,
                       sha256="a" * 64, min_ts_ns=lo, max_ts_ns=hi, query={"query": "{a=\"1\"}"})


def test_build_sums_and_round_trips() -> None:
    m = build_manifest(DAY, "export", {"backend": "loki"}, [_entry("u2/part-00000.ndjson.gz", hi=DAY_END - 1),
                                                            _entry("u1/part-00000.ndjson.gz", events=0)],
                       created_at=datetime(2025, 2, 14, tzinfo=UTC))
    assert [o.key for o in m.objects] == ["u1/part-00000.ndjson.gz", "u2/part-00000.ndjson.gz"]
    assert (m.events, m.bytes, m.uncompressed_bytes) == (10, 200, 2000)
    assert (m.min_ts_ns, m.max_ts_ns) == (DAY_START, DAY_END - 1)  # empty objects do not count
    assert m.tool.version == __version__
    assert manifest_key(DAY) == "date=2025-01-15/manifest.json"
    again = parse_manifest(m.to_json())
    assert again == m
    assert orjson.loads(m.to_json())["format"] == "ecvi-logs-archive/1"


def test_empty_day_is_a_valid_manifest() -> None:
    m = build_manifest(DAY, "export", {"backend": "loki"}, [])
    assert parse_manifest(m.to_json()).events == 0
    assert m.min_ts_ns is None


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.update(events=11), "events is 11 but the objects add up to 10"),
    (lambda d: d["objects"][0].update(key="../escape.gz"), "relative path"),
    (lambda d: d["objects"][0].update(max_ts_ns=DAY_END), "timestamps outside 2025-01-15"),
    (lambda d: d["objects"][0].update(sha256="nothex"), "objects.0.sha256"),
    (lambda d: d.update(format="ecvi-logs-archive/9"), "format"),
    (lambda d: d.update(surprise=1), "surprise"),
    (lambda d: d["objects"].append(dict(d["objects"][0])), "listed twice"),
])
def test_invalid_manifests_say_what_is_wrong(change, message) -> None:
    doc = orjson.loads(build_manifest(DAY, "export", {"backend": "loki"}, [_entry("u/part-00000.ndjson.gz")]).to_json())
    change(doc)
    with pytest.raises(ManifestError) as info:
        parse_manifest(orjson.dumps(doc), "s3://b/p/date=2025-01-15/manifest.json")
    assert message in str(info.value)
    assert "s3://b/p/date=2025-01-15/manifest.json" in str(info.value)


def test_not_json() -> None:
    with pytest.raises(ManifestError, match="not JSON"):
        parse_manifest(b"{half")
