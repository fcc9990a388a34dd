"""`render vector` of multiline grouping in container logs: the rendered route, reduce and remap, and
the same lines grouped by the shipper's tailer and by the rendered VRL (run with pyVRL) under a model
of Vector's reduce."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from click.testing import CliRunner

from pipelines.cli import render
from pipelines.vector import SAMPLE_CONTAINER_FILE
from shipper.sources.file.config import FileSourceConfig
from shipper.sources.file.multiline import LineGrouper
from shipper.sources.file.tailer import Tailer
from tests.factories import cri_line, cri_time, docker_line
from tests.shipper.sources.file.test_multiline_containers import TRACEBACK, jline
from tests.tools.locate import pyvrl_dir

POD_FILE = "/var/log/pods/ecvi_worker-1_uid-1/worker/0.log"


# (stream, message) in file order; every line whole, so partial-line handling plays no part.
CONTAINER_CORPUS = [
    ("stdout", jline(message="a", seq=1)),
    ("stderr", TRACEBACK[0]),
    *[pair for i, line in enumerate(TRACEBACK[1:]) for pair in (("stderr", line),
                                                                ("stdout", jline(message="b", seq=2 + i)))],
    ("stderr", "INFO next task"),
    ("stdout", "plain out line"),
    ("stdout", "  more out"),
    ("stderr", "ERROR job 2"),
    ("stderr", TRACEBACK[1]),
    *[("stderr", f'  File "/app/m{i}.py", line {i}, in f{i}') for i in range(7)],
    ("stderr", "    ~~~~^^^^^"),
    ("stderr", "KeyError: 'x'"),
    ("stdout", "{not json"),
    ("stdout", "[1, 2]"),
    ("stderr", "ERROR held"),
    ("stderr", TRACEBACK[1]),
    ("stderr", "KeyboardInterrupt"),
]
PATTERN_CORPUS = [("stderr", line) for line in ["2025-01-01 12:00:00 start one", "detail a", "{not json",
                                                "2025-01-01 12:00:01 start two", "[1, 2]",
                                                "2025-01-01 12:00:02 three"]]
# Lines the shipper's LineGrouper is tested with, and Python's own traceback shapes.
DECISION_CORPUS = [
    ["first line", "ERROR boom", "Traceback (most recent call last):", '  File "x.py", line 1, in <module>',
     "    f()", "ValueError: bad", "next line"],
    [*TRACEBACK, "INFO next task"],
    ["ERROR held", TRACEBACK[1], '  File "/app/j1.py", line 1', "RuntimeError: 1", "ERROR job 2"],
    [TRACEBACK[1], '  File "a.py", line 1, in f', "KeyError: 'a'", "",
     "During handling of the above exception, another exception occurred:", "", TRACEBACK[1],
     '  File "a.py", line 3, in f', "    raise RuntimeError('wrapped')", "RuntimeError: wrapped", "done"],
    [TRACEBACK[1], '  File "a.py", line 1, in f', "    x = y[0]", "        ~^^^",
     "IndexError: list index out of range"],
    [TRACEBACK[1], '  File "a.py", line 1', "SystemExit: 2", "next"],
    [TRACEBACK[1], '  File "a.py", line 1', "KeyboardInterrupt", "next"],
    [TRACEBACK[1], '  File "a.py", line 1', "asyncio.exceptions.CancelledError", "next"],
    ["The above exception was the direct cause of the following exception:", "", "next"],
    ["plain out line", "  more out", "{\"a\": 1}", "x"],
]


@pytest.fixture(scope="module")
def pyvrl() -> Any:
    sys.path.insert(0, str(pyvrl_dir()))
    import pyvrl as module

    return module


def _render(tmp_path: Path, source: dict[str, Any], *args: str) -> tuple[str, dict[str, Any]]:
    cfg = {"data_dir": "./var", "sources": {"app": {"type": "file", "include": ["/var/log/containers/*.log"],
                                                    **source}},
           "sinks": {"out": {"type": "file", "inputs": ["app"], "path": "./out.ndjson"}}}
    path = tmp_path / "shipper.yaml"
    path.write_text(yaml.safe_dump(cfg))
    result = CliRunner().invoke(render, ["vector", "--config", str(path), *args], env={"NODE_NAME": "node-a"})
    assert result.exit_code == 0, result.output
    return result.output, yaml.safe_load(result.output)


def _chain(out: dict[str, Any], parsed: str) -> None:
    """The route, reduce and remap after ``parsed``, and the sink's remap reading both branches."""
    t = out["transforms"]
    assert t["app_multiline"] == {"type": "route", "inputs": [parsed],
                                  "route": {"text": {"type": "vrl", "source": "exists(.ecvi_multiline)"}}}
    reduce = t["app_group"]
    assert reduce["type"] == "reduce" and reduce["inputs"] == ["app_multiline.text"]
    assert reduce["group_by"] == ["ecvi_multiline.file", "ecvi_multiline.stream"]
    assert reduce["merge_strategies"] == {"message": "concat_newline", "timestamp": "discard",
                                          "kubernetes": "discard", "ecvi_multiline": "discard"}
    assert t["app_grouped"]["type"] == "remap" and t["app_grouped"]["inputs"] == ["app_group"]
    assert t["out_prepare"]["inputs"] == ["app_grouped", "app_multiline._unmatched"]
    assert "multiline" not in out["sources"]["app"]


@pytest.mark.parametrize("fmt", ["cri", "docker"])
def test_file_source_groups_after_the_parse(tmp_path: Path, fmt: str) -> None:
    text, out = _render(tmp_path, {"format": fmt, "multiline": {"timeout_ms": 2000, "max_lines": 40}})
    assert out["sources"]["app"]["type"] == "file"
    _chain(out, "app_parse")
    reduce = out["transforms"]["app_group"]
    assert reduce["expire_after_ms"] == 2000 and reduce["max_events"] == 40 and reduce["flush_period_ms"] == 500
    assert ".ecvi_multiline = " in out["transforms"]["app_parse"]["source"]
    assert "#   - sources.app.multiline: grouped after the parse by the reduce app_group" in text
    assert "is not cut at max_line_bytes" in text
    assert "each piece is grouped as a line of its own" in text


@pytest.mark.parametrize("args", [(), ("--kubernetes-logs",)])
def test_kubernetes_logs_groups_after_the_exclusion_filter(tmp_path: Path, args: tuple[str, ...]) -> None:
    source: dict[str, Any] = {"format": "cri", "multiline": {}}
    if not args:
        source["kubernetes_api"] = {"node_name": "${NODE_NAME}"}
    _, out = _render(tmp_path, source, *args)
    src = out["sources"]["app"]
    assert src["type"] == "kubernetes_logs" and src["auto_partial_merge"] is True
    _chain(out, "app_parse" if args else "app_exclude")
    assert out["transforms"]["app_group"]["expire_after_ms"] == 1000
    assert out["transforms"]["app_group"]["max_events"] == 500


def test_without_multiline_nothing_is_grouped(tmp_path: Path) -> None:
    _, out = _render(tmp_path, {"format": "cri"})
    assert set(out["transforms"]) == {"app_parse", "out_prepare"}
    assert "multiline" not in out["sources"]["app"]
    assert "ecvi_multiline" not in out["transforms"]["app_parse"]["source"]
    assert out["transforms"]["out_prepare"]["inputs"] == ["app_parse"]


def test_text_keeps_the_file_source_multiline_and_json_has_none(tmp_path: Path) -> None:
    _, out = _render(tmp_path, {"format": "text", "multiline": {"start_pattern": "^\\d", "timeout_ms": 300}})
    assert out["sources"]["app"]["multiline"] == {"start_pattern": "^\\d", "condition_pattern": "^\\d",
                                                  "mode": "halt_before", "timeout_ms": 300}
    assert "app_group" not in out["transforms"]
    text, out = _render(tmp_path, {"format": "json", "multiline": {}})
    assert "multiline" not in out["sources"]["app"] and "app_group" not in out["transforms"]
    assert "sources.app.multiline: not rendered; the shipper groups no json lines either" in text


def test_custom_pattern_is_the_start_condition(tmp_path: Path, pyvrl: Any) -> None:
    text, out = _render(tmp_path, {"format": "cri", "multiline": {"start_pattern": "^\\d{4}-\\d\\d-\\d\\d '"}})
    source = out["transforms"]["app_group"]["starts_when"]["source"]
    assert source == "match(string(.message) ?? \"\", r'^\\d{4}-\\d\\d-\\d\\d \\'')\n"
    cond = pyvrl.Transform(".ok = {\n" + source + "}\n.")
    assert cond.remap({"message": "2025-01-01 '"})["ok"] is True
    assert cond.remap({"message": "x 2025-01-01 '"})["ok"] is False
    assert "start_pattern: matched by Vector's regex engine" in text


# -- the rendered VRL against the shipper ---------------------------------------------------------


class ReduceModel:
    """Vector's ``reduce`` as the rendering uses it, after ``transform_one`` and ``flush_all_into`` of
    its src/transforms/reduce/transform.rs: ``group_by``, ``starts_when`` (run with pyVRL),
    ``max_events``, the listed merge strategies, and no metadata kept."""

    def __init__(self, cfg: dict[str, Any], pyvrl: Any) -> None:
        self.cfg = cfg
        self.starts = pyvrl.Transform(".ecvi_starts = {\n" + cfg["starts_when"]["source"].replace("$$", "$") + "}\n.")
        self.states: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        self.out: list[dict[str, Any]] = []

    def _key(self, event: dict[str, Any]) -> tuple[Any, ...]:
        def get(path: str) -> Any:
            value: Any = event
            for part in path.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            return value
        return tuple(get(p) for p in self.cfg["group_by"])

    def _merge(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        strategies = self.cfg["merge_strategies"]
        merged: dict[str, Any] = {}
        for e in events:
            # A field the strategies do not name would get Vector's per-type default (a sum, a _end).
            assert set(e) <= set(strategies), set(e) - set(strategies)
            for k, v in e.items():
                if k not in merged:
                    merged[k] = v
                elif strategies[k] == "concat_newline":
                    merged[k] = f"{merged[k]}\n{v}"
                else:
                    assert strategies[k] == "discard"
        return merged

    def push(self, event: dict[str, Any]) -> None:
        starts = self.starts.remap(_vrl_input(event))["ecvi_starts"]
        key = self._key(event)
        state = self.states.get(key)
        limit = self.cfg["max_events"]
        ends = limit == 1 or (state is not None and len(state) + 1 == limit)
        if starts:
            if state is not None:
                self.out.append(self._merge(self.states.pop(key)))
            self.states[key] = [event]
        elif ends:
            self.out.append(self._merge([*self.states.pop(key, []), event]))
        else:
            self.states.setdefault(key, []).append(event)

    def flush_all(self) -> None:
        for key in list(self.states):
            self.out.append(self._merge(self.states.pop(key)))


def _vrl_input(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` for pyVRL, which takes no timestamp values back (none of these steps reads one)."""
    return {k: v for k, v in event.items() if k != "timestamp"}


def _file_lines(fmt: str, corpus: list[tuple[str, str]]) -> list[str]:
    at = [cri_time(1_735_689_600_000_000_000 + i * 1_000_000) for i in range(len(corpus))]
    if fmt == "cri":
        return [cri_line(msg, "F", stream, at[i]) for i, (stream, msg) in enumerate(corpus)]
    # Some lines end in CRLF, as a Windows-built program writes them.
    return [docker_line(msg + ("\r\n" if i % 5 == 4 else "\n"), stream, at[i])
            for i, (stream, msg) in enumerate(corpus)]


def _shipper(tmp_path: Path, fmt: str, lines: list[str], multiline: dict[str, Any]) -> list[tuple[str, str]]:
    """(stream, raw) of the events the shipper's tailer makes of ``lines``, everything flushed."""
    path = tmp_path / f"worker-1_ecvi_worker-{'c' * 64}.log"
    path.write_text("".join(lines))
    cfg = FileSourceConfig.model_validate({"type": "file", "include": [str(path)], "format": fmt,
                                           "multiline": multiline})
    t = Tailer("app", str(path), os.open(path, os.O_RDONLY), 1, 2, 3, 0, 0, cfg, "node-1", None)
    try:
        out: list[Any] = []
        t.read(out, 1 << 40)
        t.flush_group(out)
    finally:
        t.close()
    return [(e.meta.get("stream"), e.raw) for e in out]


def _vector(tmp_path: Path, pyvrl: Any, kind: str, fmt: str, lines: list[str], corpus: list[tuple[str, str]],
            multiline: dict[str, Any]) -> tuple[list[tuple[str, str]], list[str]]:
    """The rendered parse, route, reduce (modelled) and remap over ``lines``: (stream, message) of the
    grouped events, and the raw lines that went around the grouping."""
    args = ("--kubernetes-logs",) if kind == "kubernetes_logs" else ()
    _, out = _render(tmp_path, {"format": fmt, "multiline": multiline}, *args)
    t = out["transforms"]
    parse = pyvrl.Transform(t["app_parse"]["source"].replace("$$", "$") + "\n. = {\"event\": ., \"id\": %ecvi_id}")
    route = pyvrl.Transform(".ecvi_text = {\n" + t["app_multiline"]["route"]["text"]["source"] + "}\n.")
    restore = pyvrl.Transform(t["app_grouped"]["source"] + "\n.raw = %ecvi_raw\n.id = %ecvi_id\n.")
    reduce = ReduceModel(t["app_group"], pyvrl)
    around: list[str] = []
    for off, (line, (stream, msg)) in enumerate(zip(lines, corpus, strict=True)):
        if kind == "kubernetes_logs":
            event = {"message": msg, "file": POD_FILE, "stream": stream,
                     "kubernetes": {"pod_namespace": "ecvi", "pod_name": "worker-1", "container_name": "worker"}}
        else:
            event = {"message": line.removesuffix("\n"), "file": SAMPLE_CONTAINER_FILE, "offset": off}
        result = parse.remap(dict(event))
        parsed = result["event"]
        if not route.remap(_vrl_input(parsed))["ecvi_text"]:
            assert "ecvi_multiline" not in parsed
            around.append(msg)
            continue
        assert parsed["message"] == msg and parsed["ecvi_multiline"]["stream"] == stream
        assert parsed["ecvi_multiline"]["id"] == result["id"]  # so a group is named after its first line
        reduce.push(parsed)
    reduce.flush_all()
    grouped = []
    for merged in reduce.out:
        stream = merged["ecvi_multiline"]["stream"]
        done = restore.remap(_vrl_input(merged))
        assert "ecvi_multiline" not in done and done["raw"] == done["message"]
        assert done["id"] == merged["ecvi_multiline"]["id"]
        grouped.append((stream, done["message"]))
    return grouped, around


def _by_stream(events: list[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for stream, raw in events:
        out.setdefault(stream, []).append(raw)
    return out


def _is_object(raw: str) -> bool:
    try:
        return isinstance(orjson.loads(raw), dict)
    except orjson.JSONDecodeError:
        return False


@pytest.mark.parametrize(("kind", "fmt", "corpus", "multiline"), [
    ("file", "cri", CONTAINER_CORPUS, {}),
    ("file", "docker", CONTAINER_CORPUS, {}),
    ("kubernetes_logs", "cri", CONTAINER_CORPUS, {}),
    ("file", "cri", CONTAINER_CORPUS, {"max_lines": 3}),
    ("file", "cri", PATTERN_CORPUS, {"start_pattern": r"^\d{4}-\d\d-\d\d "}),
    ("kubernetes_logs", "cri", PATTERN_CORPUS, {"start_pattern": r"^\d{4}-\d\d-\d\d ", "max_lines": 2}),
], ids=["file-cri", "file-docker", "kubernetes_logs", "max_lines", "pattern", "kubernetes_logs-pattern"])
def test_rendered_grouping_matches_the_shipper(tmp_path: Path, pyvrl: Any, kind: str, fmt: str,
                                               corpus: list[tuple[str, str]], multiline: dict[str, Any]) -> None:
    lines = _file_lines(fmt, corpus)
    shipper = _shipper(tmp_path, fmt, lines, multiline)
    grouped, around = _vector(tmp_path, pyvrl, kind, fmt, lines, corpus, multiline)
    # JSON objects alone and untouched; every other message grouped per stream, in the same groups.
    assert around == [raw for _, raw in shipper if _is_object(raw)]
    assert _by_stream(grouped) == _by_stream([(s, raw) for s, raw in shipper if not _is_object(raw)])
    assert len(grouped) < len(corpus) - len(around)  # something was grouped


def _shipper_starts(lines: list[str]) -> list[bool]:
    grouper, out = LineGrouper(None), []
    for i, line in enumerate(lines):
        out.append(not grouper.continues(line, i > 0))
    return out


def _vector_starts(pyvrl: Any, source: str, lines: list[str]) -> list[bool]:
    cond = pyvrl.Transform(".ok = {\n" + source + "}\n.")
    # A reduce with no group for the line's stream starts one, whatever the condition says.
    return [i == 0 or cond.remap({"message": line})["ok"] for i, line in enumerate(lines)]


@pytest.fixture(scope="module")
def traceback_condition(tmp_path_factory: pytest.TempPathFactory) -> str:
    _, out = _render(tmp_path_factory.mktemp("tb"), {"format": "cri", "multiline": {}})
    source: str = out["transforms"]["app_group"]["starts_when"]["source"]
    return source


@pytest.mark.parametrize("lines", DECISION_CORPUS, ids=lambda lines: lines[0][:20] or "empty")
def test_traceback_condition_decides_like_the_line_grouper(pyvrl: Any, traceback_condition: str,
                                                           lines: list[str]) -> None:
    assert _vector_starts(pyvrl, traceback_condition, lines) == _shipper_starts(lines)


@pytest.mark.parametrize("lines", [
    ["INFO started", "ValueError: printed, not raised"],  # no traceback open
    [TRACEBACK[1], '  File "a.py", line 1', "StopIteration"],  # a name with no exception ending
    [TRACEBACK[1], '  File "a.py", line 1', "KeyError: 'a'", "ValueError: another"],  # traceback closed
], ids=["no-traceback", "other-name", "after-the-end"])
def test_traceback_condition_differs_where_the_note_says(pyvrl: Any, traceback_condition: str,
                                                         lines: list[str], tmp_path: Path) -> None:
    """Without memory of an open traceback the last line's decision flips (the rendered note)."""
    vector, shipper = _vector_starts(pyvrl, traceback_condition, lines), _shipper_starts(lines)
    assert vector[:-1] == shipper[:-1] and vector[-1] != shipper[-1]
    text, _ = _render(tmp_path, {"format": "cri", "multiline": {}})
    assert "cannot remember an open traceback" in text


def test_json_message_does_not_end_the_group_in_vector(tmp_path: Path, pyvrl: Any) -> None:
    """The shipper ends a stream's group at a JSON object; the rendering routes it around (the note)."""
    obj = '{"message": "x", "n": 1}'
    corpus = [("stderr", line) for line in [TRACEBACK[1], obj, "    indented after json"]]
    lines = _file_lines("cri", corpus)
    shipper = _shipper(tmp_path, "cri", lines, {"start_pattern": "^NEVER"})
    grouped, around = _vector(tmp_path, pyvrl, "file", "cri", lines, corpus, {"start_pattern": "^NEVER"})
    assert [raw for _, raw in shipper] == [TRACEBACK[1], obj, "    indented after json"]
    assert around == [obj] and grouped == [("stderr", TRACEBACK[1] + "\n    indented after json")]


def test_docker_message_keeps_its_indentation(pyvrl: Any, tmp_path: Path) -> None:
    _, out = _render(tmp_path, {"format": "docker"})
    parse = pyvrl.Transform(out["transforms"]["app_parse"]["source"] + "\n.raw = %ecvi_raw\n.")
    event = parse.remap({"message": docker_line('  File "a.py", line 1\r\n', "stderr").strip(),
                         "file": SAMPLE_CONTAINER_FILE, "offset": 0})
    assert event["message"] == event["raw"] == '  File "a.py", line 1'
