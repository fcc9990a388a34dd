"""No source module over 400 lines: a module that long does more than one job, so split it by job."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("shipper", "pipelines", "logging_config")
MAX_LINES = 400


def _too_long(root: Path) -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            lines = len(path.read_text(encoding="utf-8").splitlines())
            if lines > MAX_LINES:
                found.append(f"{path.relative_to(root)}: {lines} lines")
    return found


def test_no_module_over_the_limit() -> None:
    too_long = _too_long(ROOT)
    assert not too_long, f"over {MAX_LINES} lines (split by job):\n" + "\n".join(too_long)


def test_the_check_counts_every_line_and_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "shipper" / "deep").mkdir(parents=True)
    (tmp_path / "shipper" / "deep" / "long.py").write_text("x = 1\n" * (MAX_LINES + 1))
    (tmp_path / "shipper" / "short.py").write_text("x = 1\n" * MAX_LINES)
    assert _too_long(tmp_path) == [f"{Path('shipper/deep/long.py')}: {MAX_LINES + 1} lines"]
