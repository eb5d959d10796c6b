"""export_verified: build into a temporary file, verify against PyTorch, rename only on a pass."""

from dataclasses import replace
from pathlib import Path

import pytest

from export import exporter as exporter_module
from export.exporter import ExportFailed, export_verified, exporter_for, exporters
from export.to_onnx import export_onnx
from tests.conftest import random_model

H, W = 32, 64


def test_every_format_has_an_exporter_whose_runtime_runs_that_format():
    from runtimes import runner_class

    assert {"onnx", "torchscript", "aoti", "tensorrt"} <= set(exporters())
    for fmt, exporter in exporters().items():
        assert runner_class(exporter.runtime).artifact_format == fmt
        assert set(exporter.precisions) <= set(runner_class(exporter.runtime).precisions)


def test_a_passing_export_lands_under_its_name_and_nothing_else(tmp_path):
    out = tmp_path / "m.onnx"
    info, verification = export_verified("onnx", random_model(2), out, batch=1, height=H, width=W, log=None)
    assert verification.passed and out.is_file() and info["opset"] >= 17
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_a_wrong_artifact_fails_verification_and_leaves_nothing(tmp_path, monkeypatch):
    """The mutation: an exporter that writes a differently-seeded model (a real, valid ONNX file)."""
    onnx = exporter_for("onnx")
    wrong = random_model(2, seed=99)

    def companions(path: Path) -> list[Path]:  # as if the format kept its weights beside the graph
        return [path.with_name(path.name + ".data")]

    def build_wrong(model, path, *, batch, height, width, device, precision, **options):
        companions(path)[0].write_bytes(b"weights")
        return export_onnx(wrong, path, batch=batch, height=height, width=width)

    monkeypatch.setitem(exporters(), "onnx", replace(onnx, build=build_wrong, companions=companions))
    out = tmp_path / "m.onnx"
    with pytest.raises(ExportFailed, match="failed verification"):
        export_verified("onnx", random_model(2, seed=0), out, batch=1, height=H, width=W, log=None)
    assert list(tmp_path.iterdir()) == []  # neither the artifact, its companion nor a temporary file


def test_companions_are_renamed_with_the_artifact(tmp_path, monkeypatch):
    onnx = exporter_for("onnx")

    def companions(path: Path) -> list[Path]:
        return [path.with_name(path.name + ".json")]

    def build(model, path, **kwargs):
        companions(path)[0].write_text("{}")
        return onnx.build(model, path, **kwargs)

    monkeypatch.setitem(exporters(), "onnx", replace(onnx, build=build, companions=companions))
    out = tmp_path / "m.onnx"
    export_verified("onnx", random_model(1), out, batch=1, height=H, width=W, log=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.json"]


def test_bad_requests_are_refused_before_any_work(tmp_path):
    model = random_model(4)
    with pytest.raises(exporter_module.DMPHNError, match="unsupported onnx precision 'fp16'"):
        export_verified("onnx", model, tmp_path / "m.onnx", batch=1, height=H, width=W, precision="fp16")
    with pytest.raises(exporter_module.DMPHNError, match="no exporter for 'tflite'"):
        export_verified("tflite", model, tmp_path / "m.tflite", batch=1, height=H, width=W)
    with pytest.raises(ValueError, match="multiple"):
        export_verified("onnx", model, tmp_path / "m.onnx", batch=1, height=H + 4, width=W)
    assert list(tmp_path.iterdir()) == []
