"""README.md and docs/: every command line they show names commands and options that exist.

Each ``dmphn-*`` command in a code block or an inline code span is looked up in the console
scripts of pyproject.toml; its ``--help`` runs (the README's first-screen commands all do), and
every option the line uses must be one of the command's options. ``dmphn-export {a,b,…}`` must
list exactly the export formats there are, and the C++ tool's lines use only the options and
backends its usage text names. So names in the docs cannot drift from the code.
"""

from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
CPP_USAGE = (ROOT / "cpp" / "tools" / "dmphn_infer.cpp").read_text()

_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
_INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
_COMMAND = re.compile(r"(?:^|[\s(])(?:\.venv/bin/|cpp/build/)?(dmphn-[a-z]+|dmphn_infer)(?=\s|$)")
_OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z])(?![\w-])")


def command_lines(text: str) -> list[str]:
    """Each ``dmphn-*`` / ``dmphn_infer`` invocation: code blocks (continuations joined, comments
    dropped, cut at ``&&``, ``|`` and ``;``) and inline code spans."""
    chunks = []
    for block in _FENCE.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            chunks.append(re.sub(r"\s#\s.*$", "", line))
    prose = _FENCE.sub("", text)
    chunks += _INLINE.findall(prose)
    lines = []
    for chunk in chunks:
        for part in re.split(r"&&|\|(?![^\[]*\])|;", chunk):  # `a|b` inside [...] is an alternative, not a pipe
            match = _COMMAND.search(part)
            if match:
                lines.append(part[match.start(1):].strip())
    return lines


def _is_group(command) -> bool:
    return hasattr(command, "commands")  # typer may vendor its own click: no isinstance


def _click_command(program: str):
    module, function = SCRIPTS[program].split(":")
    app = getattr(importlib.import_module(module), function.replace("main", "app"))
    return typer.main.get_command(app)


def _options(command) -> set[str]:
    return {name for param in command.params for name in (*param.opts, *param.secondary_opts) if name.startswith("-")}


def _documented() -> list[tuple[str, str]]:
    return [(page.relative_to(ROOT).as_posix(), line) for page in PAGES for line in command_lines(page.read_text())]


@pytest.mark.parametrize(("page", "line"), [pytest.param(p, l, id=f"{p}: {l[:60]}") for p, l in _documented()
                                             if not l.startswith("dmphn_infer")])
def test_documented_python_commands_and_options_exist(page, line):
    words = line.split()
    program, rest = words[0], words[1:]
    assert program in SCRIPTS, f"{page}: {program} is not a console script ({', '.join(SCRIPTS)})"
    command, path = _click_command(program), [program]
    if _is_group(command) and rest and not rest[0].startswith("-"):
        name = rest.pop(0)
        if name.startswith("{"):  # dmphn-export {torchscript,onnx,…}: the whole list, exactly
            listed = set(name.strip("{}").split(","))
            assert listed == set(command.commands), f"{page}: {line!r} lists {sorted(listed)}, the command has {sorted(command.commands)}"
            return
        assert name in command.commands, f"{page}: {program} has no subcommand {name!r}"
        command, path = command.commands[name], [*path, name]
    known = _options(command) | {"--help"}
    used = set(_OPTION.findall(" ".join(rest)))
    assert used <= known, f"{page}: {' '.join(path)} has no option {sorted(used - known)} (in {line!r})"


def test_the_readme_first_screen_commands_answer_help():
    """What a newcomer types first: each dmphn-* command (and subcommand) in README.md has a working --help."""
    seen = set()
    for line in command_lines((ROOT / "README.md").read_text()):
        words = line.split()
        program = words[0]
        command = _click_command(program)
        args = [words[1]] if _is_group(command) and len(words) > 1 and not words[1].startswith("-") else []
        if (program, *args) in seen:
            continue
        seen.add((program, *args))
        module, function = SCRIPTS[program].split(":")
        app = getattr(importlib.import_module(module), function.replace("main", "app"))
        result = CliRunner().invoke(app, [*args, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output, f"{program} {' '.join(args)} --help: {result.output}"
    assert {"dmphn-demo", "dmphn-deblur"} <= {entry[0] for entry in seen}


def test_the_readme_keeps_the_two_fresh_machine_commands():
    """.ci/run runs the README's test command; the README must still show it and the demo command."""
    readme = (ROOT / "README.md").read_text()
    assert "bash scripts/setup.sh && .venv/bin/dmphn-demo" in readme
    assert 'bash scripts/setup.sh && .venv/bin/python -m pytest -n 3 -m "not slow"' in readme
    assert '.venv/bin/python -m pytest -n 3 -m "not slow"' in (ROOT / ".ci" / "run").read_text()


def test_documented_cpp_lines_use_the_tools_options_and_backends():
    usage_options = set(_OPTION.findall(CPP_USAGE))
    backends = re.search(r"--backend B\s+([a-z|\s]+)\(", CPP_USAGE).group(1).split("|")
    backends = {name.strip() for name in backends}
    lines = [(page, line) for page, line in _documented() if line.startswith("dmphn_infer")]
    assert lines, "the C++ page shows no dmphn_infer command"
    for page, line in lines:
        assert set(_OPTION.findall(line)) <= usage_options, f"{page}: {line!r} uses options dmphn_infer does not have"
        for listed in re.findall(r"--backend ([a-z|]+)", line):
            named = set(listed.split("|"))
            if len(named) == 1:  # one backend named: it must be one of the tool's
                assert named <= backends, f"{page}: {line!r} names backend {listed}, the tool has {sorted(backends)}"
            else:  # a list of choices: all of them, so none can go missing from the docs
                assert named == backends, f"{page}: {line!r} lists backends {listed}, the tool has {sorted(backends)}"


def test_command_lines_are_found_in_blocks_and_inline_code():
    text = "x `dmphn-deblur --tile 8 a.png` y\n```bash\n.venv/bin/dmphn-export onnx m.pt \\\n    -H 8 -o m.onnx  # note --no\nbash s.sh && .venv/bin/dmphn-demo\n```\n"
    assert command_lines(text) == ["dmphn-export onnx m.pt      -H 8 -o m.onnx", "dmphn-demo", "dmphn-deblur --tile 8 a.png"]
