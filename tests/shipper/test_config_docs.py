"""docs/configuration.md is generated from the config models and fails the tests when stale."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal, get_args

import pytest
from pydantic import BaseModel, Field

from shipper.config import docs
from shipper.config.model import AnySourceConfig, AnyTransformConfig, ShipperConfig
from shipper.sinks.registry import SINK_CONFIGS, config_tag

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_the_reference_is_up_to_date() -> None:
    assert docs.main(["--check", str(REFERENCE)]) == 0, "run: python -m shipper.config.docs > docs/configuration.md"


def test_check_fails_on_a_stale_or_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "configuration.md"
    stale.write_text(REFERENCE.read_text(encoding="utf-8").replace("`1048576`", "`1000000`", 1), encoding="utf-8")
    assert docs.main(["--check", str(stale)]) == 1
    assert "is stale" in capsys.readouterr().err
    assert docs.main(["--check", str(tmp_path / "missing.md")]) == 1


def _sections(text: str) -> dict[str, str]:
    parts = re.split(r"^### `([a-z_0-9]+)`$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_every_option_of_every_component_is_listed() -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    top, _, sinks = text.partition("## Sinks")
    components = _sections(top)  # a file source and a file sink share their tag: look at each half
    for cls in (*get_args(AnySourceConfig), *get_args(AnyTransformConfig)):
        assert set(cls.model_fields) <= set(re.findall(r"^\| `(\w+)` \|", components[config_tag(cls)], re.M))
    for cls in SINK_CONFIGS:
        assert set(cls.model_fields) <= set(re.findall(r"^\| `(\w+)` \|", _sections(sinks)[config_tag(cls)], re.M))
    assert ShipperConfig.model_fields.keys() - {"sources", "transforms", "sinks"} <= set(
        re.findall(r"^\| `(\w+)` \|", top.partition("## Sources")[0], re.M))


class _Inner(BaseModel):
    """Inner options."""

    level: int = Field(3, ge=1, le=9, description="A level.")


def _from_env() -> str:
    """``WHO`` from the environment."""
    return os.environ.get("WHO", "x")


class _Outer(BaseModel):
    kind: Literal["a", "b"] = Field("a", description="Pick | one.")
    required: list[str] = Field(..., min_length=1, description="Must be given.")
    inner: _Inner = Field(default_factory=lambda: _Inner(level=5))
    maybe: _Inner | None = None
    who: str = Field(default_factory=_from_env, description="Who.")


def test_rows_carry_type_default_description_and_nested_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHO", "this-host")
    rows = list(docs.option_rows(_Outer))
    assert rows == [
        ("`kind`", "one of `a`, `b`", "`a`", "Pick | one."),
        ("`required`", "list of string, length ≥ 1", "required", "Must be given."),
        ("`inner`", "object", "see below", "Inner options."),
        ("`inner.level`", "integer, ≥ 1, ≤ 9", "`5`", "A level."),
        ("`maybe`", "object or null", "—", "Inner options."),
        ("`maybe.level`", "integer, ≥ 1, ≤ 9", "`3`", "A level."),
        # what the factory does, not what it returned on the machine that generated the file
        ("`who`", "string", "`WHO` from the environment.", "Who."),
    ]
