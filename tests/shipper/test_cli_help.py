"""The help text as a new user reads it: examples that run as written, every option explained."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from shipper.cli import main


def _children(group: click.Group) -> dict[str, click.Command]:
    """A group's commands by name, as the command line finds them (imported on demand)."""
    ctx = click.Context(group)
    return {name: cmd for name in group.list_commands(ctx) if (cmd := group.get_command(ctx, name)) is not None}


def _commands(group: click.Group = main, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every command of the tree, groups included, with its path below ``ecvi-logs``."""
    yield path, group
    for name, cmd in _children(group).items():
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*path, name))
        else:
            yield (*path, name), cmd


def _examples(cmd: click.Command) -> list[str]:
    """The example lines of a command's help: the paragraph after an ``Examples:`` line."""
    text = cmd.help or ""
    _, sep, rest = text.partition("Examples:")
    return [line.strip() for line in rest.strip("\n").split("\n\n")[0].splitlines()] if sep else []


def _resolve(words: list[str]) -> tuple[click.Command, list[str]]:
    """The command an ``ecvi-logs …`` invocation names, and the words after its name."""
    cmd: click.Command = main
    i = 0
    while isinstance(cmd, click.Group) and i < len(words) and words[i] in _children(cmd):
        cmd = _children(cmd)[words[i]]
        i += 1
    return cmd, words[i:]


def _ecvi_examples() -> list[tuple[str, str]]:
    found = []
    for path, cmd in _commands():
        for line in _examples(cmd):
            for part in line.split("&&"):
                if part.strip().startswith("ecvi-logs "):
                    found.append((" ".join(path) or "ecvi-logs", part.strip()))
    return found


def test_the_help_has_examples_to_check() -> None:
    where = {w for w, _ in _ecvi_examples()}
    assert {"ecvi-logs", "archive", "retention", "render"} <= where


@pytest.mark.parametrize(("where", "example"), _ecvi_examples())
def test_every_help_example_parses_on_its_command(where: str, example: str) -> None:
    words = shlex.split(example)[1:]
    cmd, rest = _resolve(words)
    assert not isinstance(cmd, click.Group), f"{where}: {example!r} names no command"
    known = {opt: p for p in cmd.params if isinstance(p, click.Option) for opt in (*p.opts, *p.secondary_opts)}
    used = [(i, w.split("=")[0]) for i, w in enumerate(rest) if w.startswith("-")]
    assert [u for _, u in used if u not in known] == [], f"{where}: {example!r}"
    assert [u for _, u in used if known[u].hidden] == [], f"{where}: {example!r} uses a deprecated spelling"
    for i, flag in used:  # a choice's value must be one of its choices
        param = known[flag]
        if isinstance(param.type, click.Choice) and not param.is_flag:
            assert rest[i + 1] in param.type.choices, f"{where}: {example!r}: {flag} {rest[i + 1]}"
    missing = [p.opts[-1] for p in cmd.params if p.required and not any(u in p.opts for _, u in used)]
    assert missing == [], f"{where}: {example!r} lacks required options"


def test_archive_help_restore_example_names_the_endpoint_flag() -> None:
    out = CliRunner().invoke(main, ["archive", "--help"]).output
    restore = next(line for line in out.splitlines() if "archive restore" in line)
    assert "--es-url" not in restore and "--endpoint" in restore


def test_archive_to_means_an_archive_location_in_every_subcommand() -> None:
    archive = _children(main)["archive"]
    assert isinstance(archive, click.Group)
    for name, cmd in archive.commands.items():
        for p in cmd.params:
            if isinstance(p, click.Option) and "--to" in p.opts and not p.hidden:
                assert not isinstance(p.type, click.Choice), f"archive {name} --to is a backend type"
                assert "s3://" in (p.help or ""), f"archive {name} --to: {p.help}"


@pytest.mark.parametrize("command", ["restore", "drill"])
def test_archive_target_old_to_spelling_still_works(command: str) -> None:
    """``--to file`` (the old spelling) picks the same target as ``--target file``, with a warning."""
    args = ["archive", command, "--day", "2025-01-15", "--from", "file:///nonexistent-archive"]
    old = CliRunner().invoke(main, [*args, "--to", "file"])
    new = CliRunner().invoke(main, [*args, "--target", "file"])
    assert old.exit_code == new.exit_code != 2, old.output
    assert "deprecated" in old.output and "--target" in old.output
    assert "deprecated" not in new.output


def test_restore_needs_a_target() -> None:
    result = CliRunner().invoke(main, ["archive", "restore", "--day", "2025-01-15", "--from", "file:///x"])
    assert result.exit_code == 2 and "--target" in result.output


def test_render_help_suggests_a_vector_command_that_loads_the_rendered_file() -> None:
    render = _children(main)["render"]
    lines = _examples(render)
    written = next(shlex.split(line) for line in lines if line.startswith("ecvi-logs render vector"))
    output = written[written.index("-o") + 1]
    vector_calls = [shlex.split(part) for line in lines for part in line.split("&&")
                    if part.strip().startswith("vector ")]
    assert {c[1] for c in vector_calls} == {"validate", "test"}
    for call in vector_calls:
        assert call[-1] == output  # the file just rendered
        # The rendered file keeps ${VAR} references: Vector >= 0.57 refuses them without this flag.
        assert "--dangerously-allow-env-var-interpolation" in call, call


def _options() -> list[tuple[str, str]]:
    return [(" ".join(path) or "ecvi-logs", p.name or "?") for path, cmd in _commands() for p in cmd.params
            if isinstance(p, click.Option)]


def test_the_tree_has_options_to_check() -> None:
    assert len(_options()) > 100


@pytest.mark.parametrize(("where", "option"), _options())
def test_every_option_has_help(where: str, option: str) -> None:
    cmd, _ = _resolve(where.split()[0:] if where != "ecvi-logs" else [])
    param = next(p for p in cmd.params if p.name == option)
    assert isinstance(param, click.Option)
    text = param.help or ""
    assert len(re.sub(r"\s+", " ", text).strip()) >= 10, f"{where} {'/'.join(param.opts)} has no help text"


def test_ship_starts_without_loading_the_job_and_render_commands() -> None:
    """``ecvi-logs ship`` pays for its own imports only; the job commands still answer by name."""
    code = ("import sys, shipper.cli; "
            "print(sorted(m for m in ('shipper.jobs.cli', 'pipelines.cli') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert CliRunner().invoke(main, ["archive", "--help"]).exit_code == 0
    assert {"archive", "retention", "render", "ship"} <= set(_children(main))
