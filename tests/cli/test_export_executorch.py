"""`dmphn-export executorch` through the CLI: a verified .pte, and one-line errors that leave nothing behind."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

pytest.importorskip("executorch", reason="executorch is not installed (pip install 'dmphn-deploy[edge]')")

from cli.export import app  # noqa: E402
from dmphn_core.artifact import read_metadata  # noqa: E402
from tests.cli.test_export_openvino import _one_line_error  # noqa: E402

H, W = "32", "64"
cli = CliRunner()


def test_fp32_export_verifies_and_writes_one_file(make_checkpoint, tmp_path):
    out, report = tmp_path / "m.pte", tmp_path / "r.json"
    result = cli.invoke(app, ["executorch", str(make_checkpoint(1)), "-H", H, "-W", W, "-o", str(out),
                              "--threads", "1", "--report", str(report)])
    assert result.exit_code == 0, result.output
    for text in ("fully delegated to XNNPACK", "verify et-cpu-fp32", "verification passed", f"wrote {out}"):
        assert text in result.stdout, text
    assert {p.name for p in tmp_path.iterdir() if p.suffix != ".pt"} == {"m.pte", "r.json"}
    assert read_metadata(out)["config"]["levels"] == 1
    data = json.loads(report.read_text())
    assert data["kind"] == "executorch" and data["verification"]["passed"] is True


def test_failed_verification_and_bad_options_leave_nothing(make_checkpoint, tmp_path):
    ckpt = str(make_checkpoint(1))
    out = tmp_path / "m.pte"
    _one_line_error(cli.invoke(app, ["executorch", ckpt, "-H", H, "-W", W, "-o", str(out), "--max-abs", "0"]),
                    "failed verification", "was not written")
    _one_line_error(cli.invoke(app, ["executorch", ckpt, "-H", H, "-W", W, "--precision", "bf16"]), "bf16")
    _one_line_error(cli.invoke(app, ["executorch", ckpt, "-H", H, "-W", W, "-o", str(tmp_path / "m.onnx")]), ".pte")
    _one_line_error(cli.invoke(app, ["executorch", ckpt, "-H", H, "-W", W, "--calibration", str(tmp_path)]),
                    "--calibration is for --precision int8")
    _one_line_error(cli.invoke(app, ["executorch", ckpt, "-H", "30", "-W", W]), "30")
    assert [p.name for p in tmp_path.iterdir() if p.suffix != ".pt"] == []
