"""`dmphn-export openvino` through the CLI: a verified IR pair, and one-line errors that leave nothing behind."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

pytest.importorskip("openvino", reason="openvino is not installed (pip install openvino)")

from cli.export import app  # noqa: E402
from dmphn_core.artifact import read_metadata  # noqa: E402
from runtimes.openvino import cpu_capabilities  # noqa: E402

H, W = "32", "64"
cli = CliRunner()


def _one_line_error(result, *fragments: str) -> str:
    assert result.exit_code != 0, result.output
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: ") and "Traceback" not in result.output, result.stderr
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]
    return lines[-1]


def test_fp32_export_verifies_and_writes_the_pair(make_checkpoint, tmp_path):
    out, report = tmp_path / "m.xml", tmp_path / "r.json"
    result = cli.invoke(app, ["openvino", str(make_checkpoint(1)), "-H", H, "-W", W, "-o", str(out),
                              "--threads", "1", "--report", str(report)])
    assert result.exit_code == 0, result.output
    for text in ("verify ov-cpu-fp32", "random(seed=0)", "photo", "verification passed", f"wrote {out}",
                 f"wrote {out.with_suffix('.bin')}"):
        assert text in result.stdout, text
    written = {p.name for p in tmp_path.iterdir() if p.suffix != ".pt"}
    assert written == {"m.bin", "m.xml", "r.json"}  # no temporary files left
    assert read_metadata(out)["config"]["levels"] == 1
    data = json.loads(report.read_text())
    assert data["kind"] == "openvino" and data["verification"]["passed"] is True


def test_failed_verification_leaves_nothing(make_checkpoint, tmp_path):
    out = tmp_path / "m.xml"
    result = cli.invoke(app, ["openvino", str(make_checkpoint(1)), "-H", H, "-W", W, "-o", str(out),
                              "--max-abs", "0"])
    _one_line_error(result, "failed verification", "was not written")
    assert not out.exists() and not out.with_suffix(".bin").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_bad_options_are_one_line_errors(make_checkpoint, tmp_path):
    ckpt = str(make_checkpoint(1))
    _one_line_error(cli.invoke(app, ["openvino", ckpt, "-H", H, "-W", W, "--precision", "int4"]), "int4")
    _one_line_error(cli.invoke(app, ["openvino", ckpt, "-H", H, "-W", W, "-o", str(tmp_path / "m.onnx")]), ".xml")
    _one_line_error(cli.invoke(app, ["openvino", ckpt, "-H", H, "-W", W, "--calibration", str(tmp_path)]),
                    "--calibration is for --precision int8")


@pytest.mark.skipif("BF16" in cpu_capabilities(), reason="this CPU runs bf16 in OpenVINO; the refusal is for CPUs without it")
def test_bf16_on_a_cpu_without_it_says_what_to_do(make_checkpoint):
    result = cli.invoke(app, ["openvino", str(make_checkpoint(1)), "-H", H, "-W", W, "--precision", "bf16"])
    _one_line_error(result, "no bf16 support", "--precision fp32")
