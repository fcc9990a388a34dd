"""Reading YAML text into plain data: duplicate keys are errors, and every error names a line."""

from __future__ import annotations

import re
import secrets
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

_MERGE_TAG = "tag:yaml.org,2002:merge"


def read_yaml(text: str, keep: re.Pattern[str] | None = None) -> tuple[Any, list[tuple[str, str]]]:
    """Parse ``text`` (safe tags only); returns the data and ``(key path, message)`` problems.

    PyYAML keeps the last of two equal keys, so a repeated sink name would silently drop the
    first sink: here a repeated key is a problem naming its path and both lines. Syntax errors
    name the line but never quote the text (it may hold a secret). Matches of ``keep`` (``${VAR}``
    references) reach the data verbatim even where YAML syntax would break them, as in
    ``{port: ${PORT}}``: they are parsed as opaque words and put back in the strings.
    """
    words: dict[str, str] = {}
    if keep is not None:
        nonce = secrets.token_hex(8)

        def hide(m: re.Match[str]) -> str:
            if m.group(0) == "$$":
                return m.group(0)
            word = f"_ecvi{nonce}_{len(words)}_"
            words[word] = m.group(0)
            return word

        text = keep.sub(hide, text)
    try:
        loader = yaml.SafeLoader(text)  # reads the text at once: a control character fails here
    except yaml.MarkedYAMLError as exc:
        return None, [("<yaml>", _describe(exc))]
    except yaml.YAMLError as exc:  # ReaderError (unprintable characters) has no mark
        return None, [("<yaml>", str(exc).split("\n", 1)[0])]
    try:
        node = loader.get_single_node()
        if node is None:
            return None, []
        problems: list[tuple[str, str]] = []
        _check_keys(node, "", set(), problems)
        data = loader.construct_document(node)
        return (_restore(data, words, {}) if words else data), problems
    except yaml.MarkedYAMLError as exc:
        return None, [("<yaml>", _describe(exc))]
    except yaml.YAMLError as exc:
        return None, [("<yaml>", type(exc).__name__)]
    finally:
        loader.dispose()


def _describe(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}: " if mark else ""
    what = " ".join(p for p in (exc.context, exc.problem) if p)
    return where + (what or "invalid YAML")


def _restore(data: Any, words: dict[str, str], done: dict[int, Any]) -> Any:
    if isinstance(data, str):
        return _WORD.sub(lambda m: words.get(m.group(0), m.group(0)), data) if "_ecvi" in data else data
    if id(data) in done:
        return done[id(data)]
    if isinstance(data, dict):
        out: dict[Any, Any] = {}
        done[id(data)] = out
        out.update((_restore(k, words, done), _restore(v, words, done)) for k, v in data.items())
        return out
    if isinstance(data, list):
        items: list[Any] = []
        done[id(data)] = items
        items.extend(_restore(v, words, done) for v in data)
        return items
    return data


_WORD = re.compile(r"_ecvi[0-9a-f]{16}_\d+_")


def _check_keys(node: Node, path: str, seen: set[int], problems: list[tuple[str, str]]) -> None:
    if id(node) in seen:  # an alias: already checked, and walking it again could be exponential
        return
    seen.add(id(node))
    if isinstance(node, MappingNode):
        first_line: dict[tuple[str, str], int] = {}
        for key, value in node.value:
            name = str(key.value) if isinstance(key, ScalarNode) else "<key>"
            child = f"{path}.{name}" if path else name
            if isinstance(key, ScalarNode) and key.tag != _MERGE_TAG:
                line = key.start_mark.line + 1
                ident = (key.tag, key.value)
                if ident in first_line:
                    problems.append((child, f"duplicate key {name!r} at line {line} (first at line "
                                            f"{first_line[ident]}); a key may appear once"))
                else:
                    first_line[ident] = line
            _check_keys(value, child, seen, problems)
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            _check_keys(item, f"{path}[{i}]", seen, problems)
