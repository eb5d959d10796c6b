"""ONNX Runtime runner: CPU parity and array kinds, metadata, errors; CUDA / TensorRT EP where present."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from dmphn_core.errors import DMPHNError
from export.verify import reference_output, verification_inputs
from runtimes import runner_class
from runtimes.compare import psnr_db
from runtimes.onnxruntime import OnnxRuntimeRunner
from tests.conftest import TINY_HW

H, W = TINY_HW


def _has_provider(name: str) -> bool:
    import onnxruntime as ort

    return name in ort.get_available_providers()


requires_ort_cuda = pytest.mark.skipif(
    not (torch.cuda.is_available() and _has_provider("CUDAExecutionProvider")),
    reason="needs a CUDA GPU and onnxruntime-gpu (CUDAExecutionProvider)",
)
requires_ort_trt = pytest.mark.skipif(
    not (torch.cuda.is_available() and _has_provider("TensorrtExecutionProvider")),
    reason="needs a CUDA GPU and onnxruntime-gpu with the TensorRT execution provider",
)


@pytest.fixture(scope="module")
def exported(onnx_dynamic_batch):
    """DMPHN-1-2 with a dynamic batch at 64x128: the run's shared export (conftest)."""
    return onnx_dynamic_batch


def test_registry_key():
    assert runner_class("ort") is OnnxRuntimeRunner


def test_numpy_and_torch_in_match_pytorch(exported):
    model, path = exported
    x = verification_inputs(2, H, W)[1][1]
    before = x.copy()
    with OnnxRuntimeRunner(path, threads=1) as runner:
        assert runner.session.get_session_options().intra_op_num_threads == 1
        assert runner.model_config == model.config and runner.input_shape == (None, 3, H, W)
        y_np = runner.infer(x)
        y_torch = runner.infer(torch.from_numpy(x))
    assert isinstance(y_np, np.ndarray) and y_np.dtype == np.float32
    assert isinstance(y_torch, torch.Tensor) and y_torch.device.type == "cpu"
    ref = reference_output(model, x)
    assert np.abs(y_np - ref).max() <= 1e-4
    assert np.array_equal(y_torch.numpy(), y_np)
    assert np.array_equal(x, before)  # input untouched


def test_describe_and_lazy_activation(exported):
    _, path = exported
    runner = OnnxRuntimeRunner(path)
    assert runner.session is None and not runner.is_active  # nothing loaded before activate
    with pytest.raises(DMPHNError, match="not active"):
        runner.infer(np.zeros((1, 3, H, W), np.float32))
    with runner:
        info = runner.describe()
    assert info["runtime"] == "ort" and info["provider"] == "CPUExecutionProvider" and info["onnxruntime"]
    assert runner.session is None


def test_wrong_channel_count_is_a_clear_error(exported):
    _, path = exported
    with OnnxRuntimeRunner(path) as runner, pytest.raises(DMPHNError, match=r"expected \(B, 3, H, W\)"):
        runner.infer(np.zeros((1, 4, H, W), np.float32))


def test_corrupt_onnx_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage that is not a model" * 10)
    with pytest.raises(DMPHNError) as info:
        OnnxRuntimeRunner(bad).activate()
    assert str(info.value).startswith(f"cannot load ONNX model {bad}")
    assert len(str(info.value).splitlines()) == 1


def test_missing_onnx(tmp_path):
    with pytest.raises(DMPHNError, match="not found"):
        OnnxRuntimeRunner(tmp_path / "nope.onnx").activate()


def test_foreign_onnx_is_refused(tmp_path):
    helper, tp = onnx.helper, onnx.TensorProto
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", tp.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", tp.FLOAT, [1, 3, 4, 4])])
    path = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    with pytest.raises(DMPHNError, match="not a DMPHN export"):
        OnnxRuntimeRunner(path).activate()


def test_unavailable_reasons():
    assert OnnxRuntimeRunner.unavailable_reason("cpu", "fp32") is None
    assert "float32 graph only" in OnnxRuntimeRunner.unavailable_reason("cpu", "fp16")
    assert "bf16" in OnnxRuntimeRunner.unavailable_reason("cuda" if torch.cuda.is_available() else "cpu", "bf16")
    if not (torch.cuda.is_available() and _has_provider("CUDAExecutionProvider")):
        assert OnnxRuntimeRunner.unavailable_reason("cuda", "fp32") is not None
    with pytest.raises(DMPHNError, match="unknown ONNX Runtime provider"):
        OnnxRuntimeRunner("m.onnx", provider="openvino")
    with pytest.raises(DMPHNError, match="does not run on device"):
        OnnxRuntimeRunner("m.onnx", device="cuda", provider="cpu")


@requires_ort_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "tf32"])
def test_cuda_provider_with_torch_tensors(exported, precision):
    model, path = exported
    x = torch.from_numpy(verification_inputs(2, H, W)[1][1]).cuda()
    before = x.clone()
    with OnnxRuntimeRunner(path, device="cuda", precision=precision) as runner:
        y = runner.infer(x)
        runner.synchronize()
    assert y.device.type == "cuda" and y.shape == x.shape
    ref = reference_output(model, x.cpu().numpy(), "cuda")
    if precision == "fp32":
        assert np.abs(y.cpu().numpy() - ref).max() <= 1e-4
    else:
        assert psnr_db(y, ref) >= 45.0
    assert torch.equal(x, before)


@requires_ort_trt
@pytest.mark.gpu
def test_tensorrt_provider_fp16(exported):
    model, path = exported
    x = verification_inputs(1, H, W)[1][1]
    with OnnxRuntimeRunner(path, device="cuda", precision="fp16") as runner:
        y = runner.infer(x)
    assert psnr_db(y, reference_output(model, x, "cuda")) >= 45.0


def test_throughput_mode_runs_parallel_sessions_in_input_order(exported):
    _, path = exported
    rng = np.random.default_rng(5)
    inputs = [rng.random((1, 3, H, W), dtype=np.float32) for _ in range(5)]
    with OnnxRuntimeRunner(path) as sequential:
        expected = [sequential.infer(x) for x in inputs]
    runner = OnnxRuntimeRunner(path, threads=2)
    runner.prefer_throughput(streams=2)
    with runner:
        used = runner.concurrency()
        outputs = list(runner.infer_stream(inputs))
    assert used == {"streams": 2, "requests": 4, "batch": None, "threads_per_stream": 1}
    for got, want in zip(outputs, expected, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)
