"""The import structure of shipper/, pipelines/ and logging_config/, read from the source with ``ast``.

The shipper is layered from the event model up to the command line: a module imports only from
lower layers and from its own component, so the runtime can be read (and changed) bottom-up, and
a new module falls into its package's layer without touching this file. Module-level imports must
not form a cycle; no import at all (function-level ones included) may close a loop between sibling
packages or modules, which is how two halves of one concept hide in two places.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Bottom to top. A component is a module or package; a module belongs to the longest listed
# prefix of its dotted name. Components of one layer do not import each other.
LAYERS: tuple[tuple[str, ...], ...] = (
    # "shipper" is the root __init__ (its version)
    ("shipper", "shipper.errors", "shipper.metrics", "shipper.allocator"),
    ("shipper.event", "shipper.logs"),
    ("shipper.lines",),  # line batches: columns of events
    ("shipper.templates", "shipper.buffer", "shipper.archive", "shipper.kube"),
    ("shipper.transforms", "shipper.sources", "shipper.sinks"),
    # The config composes every component's own config model (sinks/*/config.py, ...).
    ("shipper.config", "shipper.api"),
    ("shipper.topology", "shipper.jobs"),
    ("shipper.runner", "shipper.tap"),
    ("shipper.demo", "shipper.demo_backend"),
    ("shipper.cli",),
)

# (importer prefix, imported prefix): why this upward or sideways import is right for now.
LAYER_EXCEPTIONS: dict[tuple[str, str], str] = {}

# What pipelines/ may use of the shipper: the config models and what their values mean.
PIPELINES_MAY_IMPORT = ("shipper.config", "shipper.errors", "shipper.templates", "shipper.sinks.registry",
                        "shipper.transforms.config")
PIPELINES_EXCEPTIONS: dict[tuple[str, str], str] = {
    ("pipelines.vector.sinks", "shipper.sinks.loki.encoder"):
        "metadata_name: Vector must name structured metadata as the Loki encoder does",
    ("pipelines.vrl", "shipper.sources.file.kubernetes"):
        "the kubelet's log path patterns, parsed the same way in VRL",
    ("pipelines.vrl", "shipper.transforms"):
        "LEVEL_RANKS, the level order the filter transform compares by",
}
# The shipper's runtime: rendering a config must never load it.
RUNTIME = ("shipper.topology", "shipper.runner", "shipper.api", "shipper.tap", "shipper.buffer", "shipper.jobs",
           "shipper.cli", "shipper.demo", "shipper.demo_backend")


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int
    module_level: bool  # runs when the module is imported (not in a function, not under TYPE_CHECKING)

    def __str__(self) -> str:
        return f"{self.source} -> {self.target} (line {self.line})"


def _modules(package: str) -> dict[str, Path]:
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


PACKAGES = ("shipper", "pipelines", "logging_config")
MODULES: dict[str, Path] = {m: p for pkg in PACKAGES for m, p in _modules(pkg).items()}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(body: list[ast.stmt], module_level: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement with whether it runs at import time."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, module_level
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield from _walk(node.body, False)
        elif isinstance(node, ast.If) and _is_type_checking(node):
            yield from _walk(node.body, False)
            yield from _walk(node.orelse, module_level)
        else:  # if / try / with / for / class / match bodies run where the statement runs
            for field in ("body", "orelse", "finalbody", "handlers", "cases"):
                for child in getattr(node, field, None) or ():
                    if isinstance(child, ast.stmt):
                        yield from _walk([child], module_level)
                    elif isinstance(child, ast.ExceptHandler | ast.match_case):
                        yield from _walk(child.body, module_level)


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """What a statement imports; ``from pkg import sub`` imports the submodule ``pkg.sub``."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = module.split(".")
        if MODULES[module].name != "__init__.py":
            base.pop()
        base = base[: len(base) - node.level + 1]
        if node.module:
            base.append(node.module)
        origin = ".".join(base)
    else:
        origin = node.module or ""
    return [f"{origin}.{a.name}" if f"{origin}.{a.name}" in MODULES else origin for a in node.names]


def _known(target: str) -> str | None:
    """The module of ours ``target`` names (its longest existing prefix), else None."""
    parts = target.split(".")
    while parts:
        name = ".".join(parts)
        if name in MODULES:
            return name
        parts.pop()
    return None


def _imports() -> list[Import]:
    found = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node, module_level in _walk(tree.body, True):
            for target in _targets(module, node):
                known = _known(target)
                if known is not None and known != module:
                    found.append(Import(module, known, node.lineno, module_level))
    return found


IMPORTS = _imports()


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _component(module: str) -> str | None:
    if module == "shipper":
        return "shipper"
    listed = [c for layer in LAYERS for c in layer if c != "shipper" and _within(module, c)]
    return max(listed, key=len, default=None)


LAYER_OF = {c: i for i, layer in enumerate(LAYERS) for c in layer}


def _ancestors(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _module_level_graph() -> dict[str, set[str]]:
    """Import-time edges; importing ``a.b.c`` also runs ``a`` and ``a.b`` (unless they are the importer's own)."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for imp in IMPORTS:
        if not imp.module_level:
            continue
        own = set(_ancestors(imp.source))
        for target in [*_ancestors(imp.target), imp.target]:
            if target in MODULES and target not in own and target != imp.source:
                graph[imp.source].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle path (first node repeated at the end) per strongly connected component."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_path_in(graph, set(c)) for c in components]


def _path_in(graph: dict[str, set[str]], members: set[str]) -> list[str]:
    """A cycle through the component's smallest node, found breadth-first (so it is a shortest one)."""
    start = min(members)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), start]
                if w not in came_from:
                    came_from[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle through {start}")  # pragma: no cover - members come from a cycle


def _sibling_graph(imports: list[Import]) -> dict[str, set[str]]:
    """Each import as an edge between the two siblings under the modules' nearest common package."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        a, b = imp.source.split("."), imp.target.split(".")
        if _within(imp.source, imp.target) or _within(imp.target, imp.source):
            continue  # a package and its own members
        i = 0
        while a[i] == b[i]:
            i += 1
        src, dst = ".".join(a[: i + 1]), ".".join(b[: i + 1])
        graph.setdefault(src, set()).add(dst)
        graph.setdefault(dst, set())
    return graph


def _shipper_imports() -> list[Import]:
    return [i for i in IMPORTS if _within(i.source, "shipper") and _within(i.target, "shipper")]


def _excepted(imp: Import, exceptions: dict[tuple[str, str], str]) -> tuple[str, str] | None:
    return next((key for key in exceptions if _within(imp.source, key[0]) and _within(imp.target, key[1])), None)


def test_the_graph_sees_function_level_and_submodule_imports() -> None:
    """The parser itself: a function-level import and ``from package import submodule`` are both found."""
    cli = {(i.target, i.module_level) for i in IMPORTS if i.source == "shipper.cli"}
    assert ("shipper.runner", False) in cli
    assert ("shipper.errors", True) in cli
    assert any(i.target == "shipper.archive.days" for i in IMPORTS if i.source == "shipper.jobs.cli.options")


def test_every_shipper_module_has_a_layer() -> None:
    unplaced = sorted(m for m in MODULES if _within(m, "shipper") and _component(m) is None)
    assert not unplaced, f"add these to a layer in LAYERS: {unplaced}"


def test_no_import_cycle_at_module_level() -> None:
    cycles = _cycles(_module_level_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_loop_between_sibling_packages() -> None:
    """Counting function-level imports too: a loop between siblings means one concept lives in two places."""
    imports = [i for i in _shipper_imports() if _excepted(i, LAYER_EXCEPTIONS) is None]
    loops = _cycles(_sibling_graph(imports))
    culprits = [
        f"{' -> '.join(c)}\n  " + "\n  ".join(sorted({
            str(i) for i in imports
            if any(_within(i.source, x) and _within(i.target, y) for x, y in itertools.pairwise(c))}))
        for c in loops]
    assert not loops, "loops between siblings:\n" + "\n".join(culprits)


def test_no_upward_or_sideways_import() -> None:
    bad, used = [], set()
    for imp in _shipper_imports():
        src, dst = _component(imp.source), _component(imp.target)
        if src is None or dst is None or src == dst or LAYER_OF[dst] < LAYER_OF[src]:
            continue
        key = _excepted(imp, LAYER_EXCEPTIONS)
        if key is None:
            bad.append(f"{imp} [{src} layer {LAYER_OF[src]} imports {dst} layer {LAYER_OF[dst]}]")
        else:
            used.add(key)
    assert not bad, "imports against the layering:\n" + "\n".join(bad)
    assert not set(LAYER_EXCEPTIONS) - used, f"exceptions no longer needed: {sorted(set(LAYER_EXCEPTIONS) - used)}"


def _is_config_surface(target: str) -> bool:
    return any(_within(target, p) for p in PIPELINES_MAY_IMPORT) or (
        target.endswith(".config") and _component(target) in ("shipper.sinks", "shipper.sources"))


def test_pipelines_import_only_the_config_surface() -> None:
    bad, used = [], set()
    for imp in IMPORTS:
        if not (_within(imp.source, "pipelines") and _within(imp.target, "shipper")):
            continue
        if _is_config_surface(imp.target):
            continue
        key = _excepted(imp, PIPELINES_EXCEPTIONS)
        if key is None:
            bad.append(str(imp))
        else:
            used.add(key)
    assert not bad, "pipelines/ reaches into the shipper's runtime:\n" + "\n".join(bad)
    assert not set(PIPELINES_EXCEPTIONS) - used, f"no longer needed: {sorted(set(PIPELINES_EXCEPTIONS) - used)}"


def test_rendering_a_config_does_not_load_the_runtime() -> None:
    graph = _module_level_graph()
    seen: dict[str, str] = {}
    todo = [m for m in MODULES if _within(m, "pipelines")]
    for m in todo:
        seen[m] = m
    while todo:
        v = todo.pop()
        for w in graph[v]:
            if w not in seen:
                seen[w] = v
                todo.append(w)
    loaded = sorted(m for m in seen if any(_within(m, r) for r in RUNTIME))

    def chain(m: str) -> str:
        path = [m]
        while seen[path[-1]] != path[-1]:
            path.append(seen[path[-1]])
        return " <- ".join(path)

    assert not loaded, "pipelines/ loads the runtime:\n" + "\n".join(chain(m) for m in loaded)


@pytest.mark.parametrize(("package", "forbidden"), [
    ("logging_config", ("shipper", "pipelines")),
    ("shipper", ("pipelines",)),
])
def test_package_boundaries(package: str, forbidden: tuple[str, ...]) -> None:
    """logging_config is a library of its own; the shipper reaches pipelines/ only from its command line."""
    bad = [str(i) for i in IMPORTS if _within(i.source, package) and any(_within(i.target, f) for f in forbidden)
           and not (package == "shipper" and i.source == "shipper.cli")]
    assert not bad, "\n".join(bad)


def test_cycle_finder_reports_the_path() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
