"""OpenVINO export: float IR pair, fp16 weights, NNCF int8 on tiny inputs, calibration sources."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("openvino", reason="openvino is not installed (pip install openvino)")

from dmphn_core.artifact import read_metadata  # noqa: E402
from dmphn_core.errors import DMPHNError  # noqa: E402
from dmphn_core.imageio import write_image  # noqa: E402
from export.calibration import calibration_batches  # noqa: E402
from export.to_openvino import PSNR_CAP_DB, _psnr_capped, export_openvino, fake_quantize_count  # noqa: E402
from export.verify import inputs_for, reference_output  # noqa: E402
from runtimes.compare import psnr_db  # noqa: E402
from runtimes.openvino import OpenVINORunner  # noqa: E402
from tests.conftest import random_model  # noqa: E402

H, W = 32, 64


@pytest.fixture(scope="module")
def float_ir(tmp_path_factory):
    """DMPHN-1 (seed 3) as an fp32 IR at 1x3x32x64 whose weights were written to ``elsewhere.bin``."""
    model = random_model(1, seed=3)
    folder = tmp_path_factory.mktemp("float_ir")
    export_openvino(model, folder / "a.xml", batch=1, height=H, width=W, weights_path=folder / "elsewhere.bin")
    return model, folder / "a.xml", folder / "elsewhere.bin"


def test_weights_path_is_honoured_and_fp16_halves_the_bin(float_ir, tmp_path):
    model, fp32, weights = float_ir
    fp16 = tmp_path / "b.xml"
    export_openvino(model, fp16, batch=1, height=H, width=W, precision="fp16")
    assert not fp32.with_suffix(".bin").exists() and weights.is_file()
    ratio = fp16.with_suffix(".bin").stat().st_size / weights.stat().st_size
    assert 0.45 < ratio < 0.55
    assert read_metadata(fp16)["precision"] == "fp16"
    x = inputs_for("fp32", 1, H, W)[1][1]
    with OpenVINORunner(fp32, weights=weights) as runner:
        assert np.abs(runner.infer(x) - reference_output(model, x)).max() < 1e-4


def test_int8_by_nncf_quantizes_and_runs(ov_int8_demo):
    """Plain post-training quantization of the shipped (trained) demo model on tiny inputs.

    Accuracy control is too slow for a unit test (it ranks every quantizer); the committed
    report's exports exercise it. The IR is the run's shared ``ov_int8_demo`` (conftest).
    """
    path, info, model = ov_int8_demo
    assert info["quantization"]["fake_quantize_nodes"] > 0 and info["quantization"]["bias_correction"]
    metadata = read_metadata(path)
    assert metadata["precision"] == "int8" and metadata["quantization"]["calibration_batches"] == 2
    x = inputs_for("int8", 1, H, W)[0][1]
    with OpenVINORunner(path, precision="int8") as runner:
        y = runner.infer(x)
    psnr = psnr_db(y, reference_output(model, x))
    # quantized, so not float-exact, yet the same picture (a broken graph gives < 15 dB)
    assert 20.0 < psnr < 80.0, psnr
    with pytest.raises(DMPHNError, match="int8"):
        OpenVINORunner(path, precision="fp32").activate()


def test_unknown_precision():
    with pytest.raises(DMPHNError, match="precision"):
        export_openvino(random_model(1), "m.xml", batch=1, height=H, width=W, precision="int4")


def test_psnr_metric_is_capped_and_finite():
    a = np.zeros((1, 3, 4, 4), np.float32)
    assert _psnr_capped(a, a) == PSNR_CAP_DB
    assert abs(_psnr_capped(a + 0.01, a) - 40.0) < 1e-4


def test_calibration_from_bundled_photos_and_folder(tmp_path):
    batches = calibration_batches(2, H, W, count=3)
    assert len(batches) == 1 and batches[0].shape == (2, 3, H, W) and batches[0].dtype == np.float32
    assert 0.0 <= batches[0].min() and batches[0].max() <= 1.0 and batches[0].std() > 0.01
    for k in range(3):
        write_image(tmp_path / f"{k}.png", np.full((40, 90, 3), k / 4, np.float32))
    from_folder = calibration_batches(1, H, W, tmp_path, count=2)
    assert [b.shape for b in from_folder] == [(1, 3, H, W)] * 2
    assert abs(float(from_folder[1].mean()) - 0.25) < 0.01  # sorted by name: 0.png then 1.png


def test_calibration_errors(tmp_path):
    with pytest.raises(DMPHNError, match="not found"):
        calibration_batches(1, H, W, tmp_path / "absent")
    with pytest.raises(DMPHNError, match="no images"):
        calibration_batches(1, H, W, tmp_path)
    with pytest.raises(DMPHNError, match="at least one"):
        calibration_batches(1, H, W, count=0)


def test_fake_quantize_count_of_float_ir(float_ir):
    import openvino as ov

    _, path, weights = float_ir
    assert fake_quantize_count(ov.Core().read_model(str(path), str(weights))) == 0


def test_int8_quantizes_random_weights_too(tmp_path):
    """NNCF's fast bias correction fails on some random-weight graphs; the export goes on without it."""
    pytest.importorskip("nncf", reason="int8 export needs nncf (pip install nncf)")
    info = export_openvino(random_model(1, seed=3), tmp_path / "q.xml", batch=1, height=H, width=W, precision="int8",
                           calibration_samples=1, accuracy_control=False)
    assert info["quantization"]["fake_quantize_nodes"] > 0
    assert info["quantization"]["bias_correction"] or "bias correction" in info["quantization"]["bias_correction_skipped"]
