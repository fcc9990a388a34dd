"""What ``retention apply/check/enforce`` found and did, one finding per setting or resource."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Finding:
    """``ok`` is False for drift (or a failed action). ``action`` says what apply/enforce did."""

    backend: str
    target: str
    setting: str
    expected: str
    actual: str
    ok: bool
    action: str = ""
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"backend": self.backend, "target": self.target, "setting": self.setting,
                               "expected": self.expected, "actual": self.actual, "ok": self.ok}
        if self.action:
            out["action"] = self.action
        if self.note:
            out["note"] = self.note
        return out

    def __str__(self) -> str:
        mark = "ok   " if self.ok else "DRIFT"
        text = f"{mark} {self.backend} {self.target} {self.setting}: {self.actual}"
        if not self.ok:
            text += f" (expected {self.expected})"
        if self.action:
            text += f" [{self.action}]"
        if self.note:
            text += f" — {self.note}"
        return text
