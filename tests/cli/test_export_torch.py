"""`dmphn-export torchscript` / `aoti` through the CLI: verified success, one-line errors, nothing left behind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cli.export import app
from dmphn_core.artifact import METADATA_KEY
from runtimes.torch_utils import torchscript_on_purpose

cli = CliRunner()


def _assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_torchscript_export_verifies_and_carries_metadata(make_checkpoint, tmp_path):
    # DMPHN-1-2: the command's path is the same for every hierarchy, and tracing plus verifying a
    # 1-2-4-8 costs twice as long; tests/export/test_to_torchscript.py traces DMPHN-1 and 1-2-4-8
    checkpoint = make_checkpoint(2)
    out, report = tmp_path / "m.ts", tmp_path / "report.json"
    result = cli.invoke(app, ["torchscript", str(checkpoint), "-H", "32", "-W", "64", "-b", "2", "-o", str(out),
                              "--report", str(report)])
    assert result.exit_code == 0, result.output
    assert "verification passed" in result.stdout and f"wrote {out}" in result.stdout
    extra = {METADATA_KEY: ""}
    with torchscript_on_purpose():
        torch.jit.load(str(out), _extra_files=extra)
    metadata = json.loads(extra[METADATA_KEY])
    assert metadata["export_shape"] == [2, 3, 32, 64] and metadata["size_block_hw"] == [4, 8]
    cases = json.loads(report.read_text())["verification"]["cases"]
    assert cases and all(case["max_abs"] <= 1e-4 for case in cases)


def test_failed_verification_removes_the_artifact(make_checkpoint, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "m.ts"
    # a negative bound can never pass: the export runs, fails verification and must leave nothing
    result = cli.invoke(app, ["torchscript", str(make_checkpoint(1)), "-H", "32", "-W", "32", "-o", str(out),
                              "--max-abs", "-1"])
    assert "verification FAILED" in result.stdout
    _assert_one_line_error(result, "failed verification", "was not written")
    assert _files(out_dir) == []


@pytest.mark.parametrize("kind", ["torchscript", pytest.param("aoti", marks=pytest.mark.slow)])
def test_wrong_artifact_fails_verification_and_leaves_nothing(kind, request, make_checkpoint, exports_another_model,
                                                              monkeypatch, tmp_path):
    """The exporter writes another model of the same architecture: verification at the default bound must catch it.

    TorchScript traces a differently seeded model. AOTInductor, whose compile costs ~30 s, hands over
    the run's shared package instead (``aoti_package``: DMPHN-1-2 from seed 21, here standing in
    for one compiled from this seed-0 checkpoint): an equally real, valid, wrong .pt2.
    """
    import export.to_aoti
    import export.to_torchscript

    if kind == "torchscript":
        exports_another_model(export.to_torchscript, "export_torchscript")
        levels, height, width, suffix = 1, "32", "32", ".ts"
    else:
        package, other = request.getfixturevalue("aoti_package")

        def hand_over_another_package(model, path, **kwargs):
            assert model.config == other.config and (kwargs["height"], kwargs["width"]) == (32, 64)
            shutil.copyfile(package, path)
            return {"log_lines": [f"aoti: copied {package.name} (weights of seed 21)"]}

        monkeypatch.setattr(export.to_aoti, "export_aoti", hand_over_another_package)
        levels, height, width, suffix = 2, "32", "64", ".pt2"
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = cli.invoke(app, [kind, str(make_checkpoint(levels)), "-H", height, "-W", width,
                              "-o", str(out_dir / f"m{suffix}")])
    assert "verification FAILED" in result.stdout
    _assert_one_line_error(result, f"{kind} export failed verification", "max_abs<=0.0001", "was not written")
    assert _files(out_dir) == []


def test_torchscript_bad_inputs(make_checkpoint, tmp_path):
    corrupt = tmp_path / "bad.pt"
    corrupt.write_bytes(b"not a checkpoint")
    _assert_one_line_error(cli.invoke(app, ["torchscript", str(corrupt), "-H", "32", "-W", "64"]), "corrupt")
    _assert_one_line_error(cli.invoke(app, ["torchscript", str(tmp_path / "missing.pt")]), "not found")
    _assert_one_line_error(
        cli.invoke(app, ["torchscript", str(make_checkpoint(4)), "-H", "30", "-W", "64", "-o", str(tmp_path / "x.ts")]),
        "30",
    )
    assert not (tmp_path / "x.ts").exists()


@pytest.mark.slow  # the package is an AOTInductor compile (30-70 s on 2 cores)
def test_aoti_export_cpu_verifies(aoti_package, make_checkpoint):
    """The run's shared package is this command's output: conftest's ``aoti_package`` runs
    ``dmphn-export aoti CKPT -H 32 -W 64 --dynamic-batch -o ...`` once (a compile costs ~40 s)."""
    from tests.conftest import aoti_cli_output

    path, _ = aoti_package
    result = json.loads(aoti_cli_output(path).read_text())
    assert result["exit_code"] == 0, result
    assert "verification passed" in result["stdout"] and f"wrote {path}" in result["stdout"] and path.is_file()
    assert "1x3x32x64" in result["stdout"] and "2x3x32x64" in result["stdout"]  # the dynamic batch, verified
    _assert_one_line_error(
        cli.invoke(app, ["aoti", str(make_checkpoint(1)), "-H", "32", "-W", "32", "--precision", "int3"]), "int3"
    )
