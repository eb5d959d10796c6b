"""`dmphn-deblur --model model.xml`: an OpenVINO IR is picked up by its suffix and runs through `ov`."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

pytest.importorskip("openvino", reason="openvino is not installed (pip install openvino)")

from cli.deblur import app  # noqa: E402
from dmphn_core.imageio import read_image, write_image  # noqa: E402
from dmphn_core.samples import sample_photo  # noqa: E402
from export.to_openvino import export_openvino  # noqa: E402
from tests.conftest import random_model  # noqa: E402

cli = CliRunner()


def test_deblur_runs_an_ir_by_its_suffix(tmp_path):
    model_path = tmp_path / "m.xml"
    export_openvino(random_model(1, seed=2), model_path, batch=1, height=32, width=64)
    write_image(tmp_path / "in.png", sample_photo(30, 57, "rocket.jpg"))
    result = cli.invoke(app, [str(tmp_path / "in.png"), "--model", str(model_path), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "ov-cpu-fp32" in result.stdout
    assert read_image(tmp_path / "out" / "in.png").shape == (30, 57, 3)
    bad = cli.invoke(app, [str(tmp_path / "in.png"), "--model", str(model_path), "--runtime", "ov", "--precision", "tf32"])
    assert bad.exit_code == 2 and bad.stderr.startswith("error: ") and "tf32" in bad.stderr
