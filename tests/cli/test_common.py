"""What every console script shares: usage errors as one ``error: ...`` line, like all other errors."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="tomllib (Python 3.11+) reads pyproject.toml's console scripts")

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
SCRIPTS = tomllib.loads(PYPROJECT.read_text())["project"]["scripts"]


def _run_script(name: str, args: list[str], monkeypatch) -> int:
    """Run console script ``name`` as its entry point does; return its exit code."""
    module_name, function_name = SCRIPTS[name].split(":")
    main = getattr(importlib.import_module(module_name), function_name)
    monkeypatch.setattr(sys, "argv", [name, *args])
    with pytest.raises(SystemExit) as info:
        main()
    return info.value.code


def test_every_console_script_is_covered():
    assert len(SCRIPTS) >= 9 and "dmphn-parity" in SCRIPTS and "dmphn-demo" in SCRIPTS


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_unknown_option_is_one_line_error(name, monkeypatch, capsys):
    code = _run_script(name, ["--no-such-option"], monkeypatch)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: No such option: --no-such-option") and f"{name} --help" in lines[0]


@pytest.mark.parametrize(
    ("name", "args", "fragment"),
    [
        ("dmphn-bench", ["--iters", "many"], "Invalid value for '--iters'"),
        ("dmphn-bench", ["--shape"], "requires an argument"),
        ("dmphn-export", ["onnx", "--bogus"], "dmphn-export onnx --help"),
        ("dmphn-ckpt", ["no-such-command"], "No such command"),
        ("dmphn-deblur", [], "Missing argument"),
    ],
)
def test_usage_errors_are_one_line(name, args, fragment, monkeypatch, capsys):
    code = _run_script(name, args, monkeypatch)
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    assert fragment in err and "╭" not in err  # no rich panel


def test_help_still_exits_zero(monkeypatch, capsys):
    assert _run_script("dmphn-parity", ["--help"], monkeypatch) == 0
    assert "--threads" in capsys.readouterr().out
