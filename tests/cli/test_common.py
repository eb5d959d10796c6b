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


# -- the user's situation is said as such, never "internal error" (issue #27 item 9) -------------------------

@pytest.mark.parametrize("failure", ["opaque", "errno"])
def test_disk_full_while_exporting_says_so(tmp_path, make_checkpoint, monkeypatch, failure):
    import errno
    import shutil as shutil_module
    from dataclasses import replace

    from typer.testing import CliRunner

    from cli.export import app
    from export.exporter import exporters

    def build_on_a_full_disk(model, path, **kwargs):
        path.write_bytes(b"half an archive")
        if failure == "opaque":  # what torch.save's C++ writer says, no errno
            raise RuntimeError("basic_ios::clear: iostream error")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    checkpoint = make_checkpoint(1)
    real_usage = shutil_module.disk_usage
    monkeypatch.setattr(shutil_module, "disk_usage", lambda p: real_usage(p)._replace(free=1 << 20))
    monkeypatch.setitem(exporters(), "torchscript", replace(exporters()["torchscript"], build=build_on_a_full_disk))
    out = tmp_path / "m.ts"
    result = CliRunner().invoke(app, ["torchscript", str(checkpoint), "-H", "32", "-W", "32", "-o", str(out)])
    assert result.exit_code in (1, 2), result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "internal error" not in lines[0] and "no space left" in lines[0].lower(), result.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("m.", ".m."))) == []  # nothing half-written


def test_a_read_only_output_folder_is_a_user_error(tmp_path, make_checkpoint, monkeypatch):
    import errno

    from typer.testing import CliRunner

    from cli.deblur import app
    from dmphn_core.imageio import write_image
    from dmphn_core.samples import sample_photo

    source = tmp_path / "in.png"
    write_image(source, sample_photo(32, 64, "coffee.png"))
    read_only = tmp_path / "mounted-read-only" / "out"
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if self == read_only:
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    result = CliRunner().invoke(app, [str(source), "-o", str(read_only), "--model", str(make_checkpoint(1)), "--runtime", "torch"])
    assert result.exit_code in (1, 2), result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "internal error" not in lines[0] and "Read-only file system" in lines[0], result.stderr
