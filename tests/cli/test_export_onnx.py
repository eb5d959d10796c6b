"""`dmphn-export onnx` / `trt` through the CLI: verified success, and one-line errors that leave nothing behind."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
import torch
from typer.testing import CliRunner

from cli.export import app
from export.to_onnx import read_onnx_metadata
from tests.conftest import TINY_HW

H, W = (str(v) for v in TINY_HW)
cli = CliRunner()


def _tensorrt_buildable() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available()


def _assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_onnx_export_verifies_and_writes(make_checkpoint, tmp_path):
    out, report = tmp_path / "m.onnx", tmp_path / "report.json"
    result = cli.invoke(app, ["onnx", str(make_checkpoint(1)), "-H", H, "-W", W, "-o", str(out), "--report", str(report)])
    assert result.exit_code == 0, result.output
    for text in ("onnx: opset 18", "dynamic-shape ops: 0", "onnx.checker (full_check): ok", "random(seed=0)",
                 "photo", "max_abs=", "mean_abs=", "psnr=", "verification passed", f"wrote {out}"):
        assert text in result.stdout, text
    assert read_onnx_metadata(onnx.load(str(out)))["config"]["levels"] == 1
    data = json.loads(report.read_text())
    assert data["verification"]["passed"] and all(case["max_abs"] <= 1e-4 for case in data["verification"]["cases"])
    assert data["export"]["op_counts"]["Conv"] == 28
    assert _leftovers(tmp_path) == []


def test_onnx_dynamic_export_is_verified_at_extra_shapes(make_checkpoint, tmp_path):
    out = tmp_path / "dyn.onnx"
    result = cli.invoke(app, ["onnx", str(make_checkpoint(1)), "-H", H, "-W", W, "-o", str(out),
                              "--dynamic-batch", "--dynamic-hw"])
    assert result.exit_code == 0, result.output
    # batch + 1, and H + block x W + 2 blocks (DMPHN-1: block 4x4)
    assert f"2x3x{H}x{W}" in result.stdout and f"1x3x{int(H) + 4}x{int(W) + 8}" in result.stdout
    assert out.exists()


def test_failed_verification_keeps_old_file_and_leaves_no_temp(make_checkpoint, tmp_path):
    out = tmp_path / "m.onnx"
    out.write_bytes(b"previous artifact")
    result = cli.invoke(app, ["onnx", str(make_checkpoint(1)), "-H", H, "-W", W, "-o", str(out), "--max-abs", "0"])
    _assert_one_line_error(result, "onnx export failed verification", "max_abs<=0")
    assert "verification FAILED" in result.stdout
    assert out.read_bytes() == b"previous artifact"
    assert _leftovers(tmp_path) == []


def test_wrong_artifact_fails_verification_and_keeps_old_file(make_checkpoint, exports_another_model, tmp_path):
    import export.to_onnx

    exports_another_model(export.to_onnx, "export_onnx")
    out = tmp_path / "m.onnx"
    out.write_bytes(b"previous artifact")
    result = cli.invoke(app, ["onnx", str(make_checkpoint(1)), "-H", H, "-W", W, "-o", str(out)])
    _assert_one_line_error(result, "onnx export failed verification", "max_abs<=0.0001")
    assert "verification FAILED" in result.stdout
    assert out.read_bytes() == b"previous artifact"
    assert _leftovers(tmp_path) == []


def test_missing_checkpoint(tmp_path):
    out = tmp_path / "m.onnx"
    result = cli.invoke(app, ["onnx", str(tmp_path / "nope.pt"), "-H", H, "-W", W, "-o", str(out)])
    _assert_one_line_error(result, "nope.pt")
    assert not out.exists()


def test_corrupt_checkpoint(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00not a checkpoint")
    result = cli.invoke(app, ["onnx", str(bad), "-H", H, "-W", W, "-o", str(tmp_path / "m.onnx")])
    _assert_one_line_error(result, "checkpoint")
    assert not (tmp_path / "m.onnx").exists()


def test_impossible_shape(make_checkpoint, tmp_path):
    result = cli.invoke(app, ["onnx", str(make_checkpoint(4)), "-H", "60", "-W", W, "-o", str(tmp_path / "m.onnx")])
    _assert_one_line_error(result, "multiple of 8", "60x128")
    assert list(tmp_path.glob("*.onnx")) == []


@pytest.mark.parametrize("size", [("0", W), (H, "-16")])
def test_non_positive_size_is_its_own_one_line_error(make_checkpoint, tmp_path, size):
    result = cli.invoke(app, ["onnx", str(make_checkpoint(1)), "-H", size[0], "-W", size[1], "-o", str(tmp_path / "m.onnx")])
    _assert_one_line_error(result, "must be positive", f"{size[0]}x{size[1]}")
    assert "crop to" not in result.stderr


def test_bad_batch_and_opset(make_checkpoint, tmp_path):
    ckpt = str(make_checkpoint(1))
    _assert_one_line_error(cli.invoke(app, ["onnx", ckpt, "-H", H, "-W", W, "-b", "0", "-o", str(tmp_path / "a.onnx")]),
                           "--batch")
    _assert_one_line_error(cli.invoke(app, ["onnx", ckpt, "-H", H, "-W", W, "--opset", "13", "-o",
                                            str(tmp_path / "b.onnx")]), "opset must be >= 17")
    assert list(tmp_path.glob("*.onnx")) == []


def test_unwritable_output_folder(make_checkpoint, tmp_path):
    result = cli.invoke(app, ["onnx", str(make_checkpoint(1)), "-H", H, "-W", W, "-o",
                              str(tmp_path / "missing" / "m.onnx")])
    _assert_one_line_error(result, "does not exist")


def test_output_is_a_folder(make_checkpoint, tmp_path):
    folder = tmp_path / "taken"
    folder.mkdir()
    result = cli.invoke(app, ["onnx", str(make_checkpoint(1)), "-H", H, "-W", W, "-o", str(folder)])
    _assert_one_line_error(result, "is a folder")
    assert "onnx: opset" not in result.stdout  # refused before exporting anything
    assert folder.is_dir() and list(folder.iterdir()) == []
    assert _leftovers(tmp_path) == []


def test_trt_unknown_precision(make_checkpoint, tmp_path):
    result = cli.invoke(app, ["trt", str(make_checkpoint(1)), "-H", H, "-W", W, "--precision", "int4",
                              "-o", str(tmp_path / "m.engine")])
    _assert_one_line_error(result, "precision 'int4'", "fp32, tf32, fp16")


@pytest.mark.skipif(_tensorrt_buildable(), reason="tensorrt and CUDA are present: this host can build engines")
def test_trt_without_tensorrt_or_cuda_says_what_is_missing(make_checkpoint, tmp_path):
    result = cli.invoke(app, ["trt", str(make_checkpoint(1)), "-H", H, "-W", W, "-o", str(tmp_path / "m.engine")])
    _assert_one_line_error(result)
    message = result.stderr.lower()
    assert "tensorrt" in message or "cuda" in message
    assert [p.name for p in tmp_path.iterdir() if p.suffix != ".pt"] == []
