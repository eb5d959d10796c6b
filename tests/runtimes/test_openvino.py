"""OpenVINO runner: fp32 parity and array kinds, metadata from rt_info, settings, errors, bf16/fp16 honesty."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
import torch

pytest.importorskip("openvino", reason="openvino is not installed (pip install openvino)")

from dmphn_core.artifact import read_metadata  # noqa: E402
from dmphn_core.errors import DMPHNError, RuntimeUnavailable  # noqa: E402
from export.to_openvino import export_openvino  # noqa: E402
from export.verify import reference_output, verification_inputs  # noqa: E402
from runtimes import runner_class, runtime_names  # noqa: E402
from runtimes.openvino import OpenVINORunner, cpu_capabilities  # noqa: E402
from tests.conftest import random_model  # noqa: E402

H, W = 32, 64


@pytest.fixture(scope="module")
def ir(tmp_path_factory):
    model = random_model("1-2", seed=7)
    path = tmp_path_factory.mktemp("ov") / "model.xml"
    export_openvino(model, path, batch=1, height=H, width=W)
    return model, path


def test_registry_and_class_attributes():
    assert "ov" in runtime_names() and runner_class("ov") is OpenVINORunner
    assert OpenVINORunner.runtime == "ov" and OpenVINORunner.artifact_format == "openvino"
    assert OpenVINORunner.devices == ("cpu",)
    assert OpenVINORunner.precisions == ("fp32", "bf16", "fp16", "int8")


def test_fp32_matches_pytorch_for_numpy_and_torch(ir):
    model, path = ir
    x = verification_inputs(1, H, W)[1][1]
    before = x.copy()
    with OpenVINORunner(path, threads=1) as runner:
        assert runner.compiled.get_property("INFERENCE_NUM_THREADS") == 1
        assert str(runner.compiled.get_property("PERFORMANCE_HINT")) == "LATENCY"
        assert runner.executed_precision == "f32"
        assert runner.model_config == model.config and runner.input_shape == (1, 3, H, W)
        y_np = runner.infer(x)
        y_torch = runner.infer(torch.from_numpy(x))
    np.testing.assert_array_equal(x, before)  # the shared input buffer is never written
    assert isinstance(y_np, np.ndarray) and y_np.dtype == np.float32
    assert isinstance(y_torch, torch.Tensor) and y_torch.dtype == torch.float32
    ref = reference_output(model, x)
    assert np.abs(y_np - ref).max() < 1e-4
    np.testing.assert_array_equal(y_np, y_torch.numpy())


def test_metadata_lives_in_rt_info(ir):
    model, path = ir
    metadata = read_metadata(path)
    assert metadata["export_shape"] == [1, 3, H, W]
    assert metadata["precision"] == "fp32" and metadata["config"] == model.config.to_dict()
    assert "openvino" in metadata


def test_wrong_shape_is_a_one_line_error(ir):
    _, path = ir
    with OpenVINORunner(path) as runner, pytest.raises(DMPHNError, match="built for input 1x3x32x64"):
        runner.infer(np.zeros((1, 3, H, 2 * W), np.float32))


def test_float_ir_refuses_int8(ir):
    _, path = ir
    with pytest.raises(DMPHNError, match="float IR"):
        OpenVINORunner(path, precision="int8").activate()


def test_missing_weights_and_wrong_suffix(ir, tmp_path):
    _, path = ir
    lone = tmp_path / "lone.xml"
    shutil.copy(path, lone)
    with pytest.raises(DMPHNError, match="weights not found"):
        OpenVINORunner(lone).activate()
    with pytest.raises(DMPHNError, match=r"\.xml file"):
        OpenVINORunner(tmp_path / "model.onnx").activate()
    with pytest.raises(DMPHNError, match="not found"):
        OpenVINORunner(tmp_path / "absent.xml").activate()


def test_corrupt_ir_is_a_one_line_error(ir, tmp_path):
    _, path = ir
    bad = tmp_path / "bad.xml"
    bad.write_text("<net><layers>")
    shutil.copy(path.with_suffix(".bin"), bad.with_suffix(".bin"))
    with pytest.raises(DMPHNError, match="cannot read OpenVINO IR"):
        OpenVINORunner(bad).activate()


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.99])
def test_truncated_weights_say_why_not_where(ir, tmp_path, keep):
    """Issue #27 item 9: OpenVINO's message starts with source locations; the reason is further down."""
    _, path = ir
    shutil.copy(path, tmp_path / "cut.xml")
    weights = path.with_suffix(".bin").read_bytes()
    (tmp_path / "cut.bin").write_bytes(weights[: int(len(weights) * keep)])
    with pytest.raises(DMPHNError) as info:
        OpenVINORunner(tmp_path / "cut.xml").activate()
    reason = str(info.value).split(": ", 1)[1]
    assert not re.search(r"\.(cpp|hpp):\d+:?$", reason) and re.search(r"[A-Za-z]{4,}", reason), reason
    assert "weights" in reason.lower() or "bin" in reason.lower(), reason


def test_cpu_only_and_bad_settings():
    assert "CPU only" in OpenVINORunner.unavailable_reason("cuda", "fp32")
    assert "no tf32 mode" in OpenVINORunner.unavailable_reason("cpu", "tf32")
    with pytest.raises(DMPHNError, match="performance hint"):
        OpenVINORunner("m.xml", performance_hint="FAST")
    with pytest.raises(DMPHNError, match="threads"):
        OpenVINORunner("m.xml", threads=0)


@pytest.mark.parametrize("precision, capability", [("bf16", "BF16"), ("fp16", "FP16")])
def test_reduced_precision_runs_only_where_the_cpu_has_it(ir, precision, capability):
    """Where the CPU lacks the instructions OpenVINO quietly computes in f32: the runner says so instead."""
    import openvino as ov

    model, path = ir
    has_it = capability in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    assert (capability in cpu_capabilities()) == has_it
    reason = OpenVINORunner.unavailable_reason("cpu", precision)
    if not has_it:
        assert reason is not None and f"no {precision} support" in reason
        with pytest.raises(RuntimeUnavailable, match=f"no {precision} support"):
            OpenVINORunner(path, precision=precision).activate()
        return
    assert reason is None
    x = verification_inputs(1, H, W)[1][1]
    with OpenVINORunner(path, precision=precision) as runner:
        assert runner.executed_precision == {"bf16": "bf16", "fp16": "f16"}[precision]
        y = runner.infer(x)
    from runtimes.compare import psnr_db

    assert psnr_db(y, reference_output(model, x)) > 35.0


def test_runtimes_without_int8_say_why():
    from runtimes.torch_eager import TorchReferenceRunner, TorchRunner

    for cls in (TorchRunner, TorchReferenceRunner):
        reason = cls.unavailable_reason("cpu", "int8")
        assert reason is not None and "int8" in reason


@pytest.mark.parametrize(("capabilities", "asked", "hint"), [
    (("FP32", "INT8", "BF16"), "auto", "bf16"), (("FP32", "INT8"), "auto", "f32"), (("FP32", "INT8", "BF16"), "f32", "f32"),
])
def test_int8_float_parts_follow_the_cpu(ir, monkeypatch, capabilities, asked, hint):
    import runtimes.openvino as module

    monkeypatch.setattr(module, "cpu_capabilities", lambda: capabilities)
    _, path = ir
    assert OpenVINORunner(path, precision="int8", int8_float_hint=asked).hint == hint
    assert OpenVINORunner(path, precision="bf16").hint == "bf16"


def test_unknown_int8_float_hint_is_refused(ir):
    with pytest.raises(DMPHNError, match="int8_float_hint"):
        OpenVINORunner(ir[1], precision="int8", int8_float_hint="f16")


def test_throughput_mode_keeps_requests_in_flight_and_outputs_in_order(ir):
    _, path = ir
    rng = np.random.default_rng(3)
    inputs = [rng.random((1, 3, H, W), dtype=np.float32) for _ in range(6)]
    with OpenVINORunner(path) as sequential:
        expected = [sequential.infer(x) for x in inputs]
        assert sequential.concurrency()["requests"] == 1
    runner = OpenVINORunner(path)
    runner.prefer_throughput(streams=2)
    with runner:
        used = runner.concurrency()
        outputs = list(runner.infer_stream(iter(inputs)))
        assert runner.describe()["performance_hint"] == "THROUGHPUT"
    assert used["streams"] == 2 and used["requests"] >= 2  # OpenVINO's own count for 2 streams
    assert len(outputs) == len(inputs)
    for got, want in zip(outputs, expected):  # in input order, each its own input's output
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_prefer_throughput_after_activate_is_refused(ir):
    with OpenVINORunner(ir[1]) as runner, pytest.raises(DMPHNError, match="before activate"):
        runner.prefer_throughput()
