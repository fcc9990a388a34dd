"""The archive package sits below the sinks and the jobs: no upward import, no circle.

Two independent views: the import statements of every module (parsed, including imports inside
functions), and what importing a package in a fresh interpreter really loads.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[3]
PACKAGES = ("shipper.archive", "shipper.jobs")


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _graph() -> dict[str, set[str]]:
    """Module -> the shipper modules it imports (anywhere in the file)."""
    modules = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg.replace(".", "/")).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("shipper"):
                deps.add(node.module)
                deps |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("shipper")}
        graph[name] = {d for d in deps if d != name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep):], dep]
            if dep in graph and dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_archive_imports_nothing_of_the_sinks_the_jobs_or_the_config() -> None:
    graph = _graph()
    archive = {m: deps for m, deps in graph.items() if m.startswith("shipper.archive")}
    assert {"shipper.archive.storage.base", "shipper.archive.layout", "shipper.archive.manifest"} <= set(archive)
    upward = {(m, d) for m, deps in archive.items() for d in deps
              if d.startswith(("shipper.jobs", "shipper.sinks", "shipper.config", "shipper.runner"))}
    assert upward == set()


def test_no_circle_in_the_archive_or_the_jobs() -> None:
    assert _cycle(_graph()) is None
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]  # the finder finds one


@pytest.mark.parametrize(("module", "forbidden"), [
    ("shipper.archive.storage.url", ("shipper.jobs", "shipper.sinks", "shipper.config")),
    ("shipper.archive.manifest", ("shipper.jobs", "shipper.sinks", "shipper.config")),
    ("shipper.sinks.s3.sink", ("shipper.jobs",)),
    ("shipper.errors", ("shipper.sinks", "shipper.config", "shipper.jobs", "shipper.archive")),
])
def test_importing_alone_loads_nothing_above(module: str, forbidden: tuple[str, ...]) -> None:
    code = (f"import sys, {module}\n"
            "print('\\n'.join(sorted(m for m in sys.modules if m.startswith('shipper'))))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    loaded = proc.stdout.split()
    assert module in loaded
    assert [m for m in loaded if m.startswith(forbidden)] == []
