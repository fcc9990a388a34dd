import zlib

import orjson

from shipper.archive.objects import PartWriter, encode_line, gzip_bytes, iter_records, scan_object, sha256_hex


def _lines(n: int, size: int = 100) -> list[tuple[int, bytes]]:
    return [(1000 + i, encode_line({"ts_ns": 1000 + i, "line": "x" * size})) for i in range(n)]


def test_parts_are_bounded_by_uncompressed_size() -> None:
    writer = PartWriter(max_bytes=1000)
    parts = [p for ts, line in _lines(40) if (p := writer.add(line, ts))]
    last = writer.finish()
    assert last is not None
    parts.append(last)
    assert all(p.uncompressed_bytes <= 1000 for p in parts)
    assert sum(p.events for p in parts) == 40
    assert [p.min_ts_ns for p in parts] == sorted(p.min_ts_ns for p in parts)
    assert len(zlib.decompress(parts[0].data, 47)) == parts[0].uncompressed_bytes


def test_a_line_longer_than_the_bound_goes_alone() -> None:
    writer = PartWriter(max_bytes=50)
    assert writer.add(encode_line({"ts_ns": 1, "line": "y" * 200}), 1) is None
    part = writer.add(encode_line({"ts_ns": 2, "line": "z"}), 2)
    assert part is not None and part.events == 1 and part.uncompressed_bytes > 50


def test_parts_are_deterministic() -> None:
    def build() -> bytes:
        w = PartWriter()
        for ts, line in _lines(100):
            w.add(line, ts)
        part = w.finish()
        assert part is not None
        return part.data

    first, second = build(), build()
    assert first == second
    assert sha256_hex(first) == sha256_hex(second)
    assert first[4:8] == b"\x00\x00\x00\x00"  # gzip mtime 0


def test_scan_counts_and_finds_damage() -> None:
    good = gzip_bytes(b"".join(line for _, line in _lines(5)))
    scan = scan_object(good)
    assert (scan.events, scan.bad_lines, scan.min_ts_ns, scan.max_ts_ns) == (5, 0, 1000, 1004)
    bad = gzip_bytes(b'{"ts_ns": 1, "line": "a"}\nnot json\n{"line": "no ts"}\n')
    scan = scan_object(bad)
    assert (scan.events, scan.bad_lines) == (3, 2)
    assert "line 2" in scan.first_error
    assert scan_object(b"garbage").first_error.startswith("not valid gzip")


def test_lone_surrogates_are_archived_with_replacements() -> None:
    line = encode_line({"ts_ns": 1, "line": "bad \udcff byte"})
    assert orjson.loads(line)["line"] == "bad ? byte"
    assert next(iter_records(gzip_bytes(line)))["ts_ns"] == 1
