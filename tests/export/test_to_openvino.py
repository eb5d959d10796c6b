"""OpenVINO export: float IR pair, fp16 weights, NNCF int8 on tiny inputs, calibration sources."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("openvino", reason="openvino is not installed (pip install openvino)")

from dmphn_core.artifact import read_metadata  # noqa: E402
from dmphn_core.errors import DMPHNError  # noqa: E402
from dmphn_core.imageio import write_image  # noqa: E402
from export.calibration import calibration_batches, calibration_shape  # noqa: E402
from export.ov_int8 import PSNR_CAP_DB, fake_quantize_count, image_space_convolutions, mean_psnr  # noqa: E402
from export.to_openvino import export_openvino  # noqa: E402
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


def _demo_model():
    from dmphn_core.checkpoint import DEMO_CHECKPOINT, load_checkpoint

    return load_checkpoint(DEMO_CHECKPOINT).build_model()


def _int8_psnr(model, path) -> float:
    x = inputs_for("int8", 1, H, W)[0][1]
    with OpenVINORunner(path, precision="int8") as runner:
        return psnr_db(runner.infer(x), reference_output(model, x))


def _quantized_adds(model) -> list[str]:
    return [op.get_friendly_name() for op in model.get_ops() if op.get_type_name() == "Add"
            and any(i.get_source_output().get_node().get_type_name() == "FakeQuantize" for i in op.inputs())]


def test_int8_keeps_adds_and_image_space_convolutions_float(tmp_path):
    """The default int8 of the shipped (trained) demo model: what stays float is recorded and costs less PSNR."""
    pytest.importorskip("nncf", reason="int8 export needs nncf (pip install nncf)")
    model = _demo_model()
    auto, plain = tmp_path / "auto.xml", tmp_path / "plain.xml"
    info = export_openvino(model, auto, batch=1, height=H, width=W, precision="int8", calibration_samples=2,
                           accuracy_control=False)["quantization"]
    export_openvino(model, plain, batch=1, height=H, width=W, precision="int8", calibration_samples=2,
                    accuracy_control=False, keep_float="none")
    levels = model.config.levels
    # one image-space convolution at each end of every level; the 28 others of a level are int8
    assert len(info["float_convolutions"]) == 2 * levels and info["int8_convolutions"] == 28 * levels
    assert info["float_op_types"] == ["Add"] and info["fake_quantize_nodes"] > 0
    assert info["calibration_shape"] == [1, 3, H, W] and not info["accuracy_control_ran"]
    assert 20.0 < info["validation_psnr_db"] < PSNR_CAP_DB
    metadata = read_metadata(auto)
    assert metadata["precision"] == "int8" and metadata["quantization"]["float_convolutions"] == info["float_convolutions"]
    import openvino as ov

    fixed = ov.Core().read_model(str(auto))
    assert list(fixed.input(0).get_shape()) == [1, 3, H, W]  # calibrated with dynamic H, W; saved static
    # no Add reads a FakeQuantize output in the default IR; NNCF's plain quantization puts them there
    assert not _quantized_adds(fixed) and _quantized_adds(ov.Core().read_model(str(plain)))
    assert set(info["float_convolutions"]) == set(image_space_convolutions(fixed))
    for path in (auto, plain):
        # quantized, so not float-exact, yet the same picture (a broken graph gives < 15 dB)
        assert 20.0 < _int8_psnr(model, path) < 80.0
    with pytest.raises(DMPHNError, match="int8"):
        OpenVINORunner(auto, precision="fp32").activate()


@pytest.mark.slow  # NNCF's accuracy control ranks every quantizer: ~18 s on 2 cores
def test_int8_accuracy_control_runs_when_the_target_misses(tmp_path):
    """An unreachable target makes NNCF's accuracy control revert layers (one here: fast) and say so."""
    pytest.importorskip("nncf", reason="int8 export needs nncf (pip install nncf)")
    info = export_openvino(random_model(1, seed=3), tmp_path / "q.xml", batch=1, height=H, width=W,
                           precision="int8", calibration_samples=1, accuracy_control=True, min_psnr_db=99.0,
                           max_layers_reverted=1,
                           )["quantization"]
    assert info["accuracy_control_ran"] and info["min_psnr_db"] == 99.0
    assert len(info["float_convolutions"]) > 2  # the two image-space ones and what accuracy control reverted
    assert info["validation_psnr_db"] >= info["psnr_before_accuracy_control_db"] - 0.5


def test_calibration_shape_is_small_and_on_the_size_block():
    assert calibration_shape(720, 1280, (16, 8)) == (128, 256)
    assert calibration_shape(32, 64, (8, 16)) == (32, 64)
    assert calibration_shape(720, 1280, (24, 24)) == (120, 240)


def test_image_space_convolutions_of_a_float_ir(tmp_path):
    import openvino as ov

    path = tmp_path / "f.xml"
    export_openvino(random_model(2), path, batch=1, height=H, width=W)
    model = ov.Core().read_model(str(path))
    names = image_space_convolutions(model)
    assert len(names) == 4  # two levels: first encoder and last decoder convolution of each
    convs = {op.get_friendly_name(): op for op in model.get_ops() if op.get_type_name() == "Convolution"}
    for name in names:
        assert 3 in list(convs[name].input(1).get_shape())[:2]


def test_unknown_precision():
    with pytest.raises(DMPHNError, match="precision"):
        export_openvino(random_model(1), "m.xml", batch=1, height=H, width=W, precision="int4")


def test_psnr_metric_is_capped_and_finite():
    a = np.zeros((1, 3, 4, 4), np.float32)
    assert mean_psnr([a, a], [a, a]) == PSNR_CAP_DB
    assert abs(mean_psnr([a + 0.01], [a]) - 40.0) < 1e-4
    # one number for the set: the PSNR of the mean squared error, not the mean of PSNRs
    assert abs(mean_psnr([a + 0.01, a], [a, a]) - (40.0 + 10 * np.log10(2))) < 1e-4


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
    pytest.importorskip("nncf", reason="int8 export needs nncf (pip install nncf)")
    info = export_openvino(random_model(1, seed=3), tmp_path / "q.xml", batch=1, height=H, width=W, precision="int8",
                           calibration_samples=1, accuracy_control=False)
    assert info["quantization"]["fake_quantize_nodes"] > 0 and info["quantization"]["bias_correction"] is False
