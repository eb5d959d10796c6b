"""Profile hook: the trace parsers on made-up traces, then one real profile per runtime on a tiny model."""

from __future__ import annotations

import datetime
from types import SimpleNamespace

import numpy as np
import pytest

from dmphn_core.errors import RuntimeUnavailable
from export.to_onnx import export_onnx
from runtimes.base import Runner
from runtimes.onnxruntime import OnnxRuntimeRunner
from runtimes.profiling import OpTime, Profile, onnxruntime_rows, openvino_precision, openvino_rows
from runtimes.torch_eager import TorchRunner
from tests.conftest import random_model

H, W = 32, 64


def _node(name: str, op: str, dur: float, dtype: str = "uint8") -> dict:
    return {"cat": "Node", "name": f"{name}_kernel_time", "dur": dur,
            "args": {"op_name": op, "input_type_shape": [{dtype: [1, 3]}]}}


def test_onnxruntime_trace_rows_keep_kernel_and_input_type():
    trace = [_node("conv_a", "QLinearConv", 300), _node("dq", "DequantizeLinear", 50),
             {"cat": "Node", "name": "conv_a_fence_before", "dur": 1}, {"cat": "Session", "name": "model_run", "dur": 400}]
    rows = {row.name: row for row in onnxruntime_rows(trace)}
    assert set(rows) == {"conv_a", "dq"}
    assert rows["conv_a"].kernel == "QLinearConv" and rows["conv_a"].precision == "uint8"
    assert rows["conv_a"].total_ms == pytest.approx(0.3)


def test_openvino_rows_read_the_kernel_precision_and_skip_fused_layers():
    def info(name, exec_type, micros, status="Status.EXECUTED"):
        return SimpleNamespace(node_name=name, node_type="Convolution", exec_type=exec_type, status=status,
                               real_time=datetime.timedelta(microseconds=micros))

    rows = openvino_rows([info("a", "brgconv_avx512_amx_I8", 900), info("b", "jit_avx512_amx_bf16", 100),
                          info("c", "undef", 0, "Status.NOT_RUN")])
    assert [(r.name, r.precision) for r in rows] == [("a", "i8"), ("b", "bf16")]
    assert openvino_precision("ref_any") is None


def test_profile_top_and_by_kernel_add_up():
    profile = Profile("t", 10.0, [OpTime("a", "Conv", "f32", 1, 6.0), OpTime("b", "Conv", "f32", 1, 3.0),
                                  OpTime("c", "Add", "f32", 1, 1.0)])
    assert [op.name for op in profile.top(2)] == ["a", "b"]
    kernels = profile.by_kernel()
    assert kernels[0]["kernel"] == "Conv" and kernels[0]["calls"] == 2 and kernels[0]["share"] == pytest.approx(0.9)
    assert profile.to_dict(1)["top"][0]["share"] == pytest.approx(0.6)


def test_torch_profile_lists_convolutions():
    x = np.random.default_rng(0).random((1, 3, H, W), dtype=np.float32)
    with TorchRunner(random_model("1-2"), precision="fp32") as runner:
        profile = runner.profile(x)
    assert profile.tool.startswith("torch.profiler") and profile.wall_ms > 0
    assert any("conv" in op.name for op in profile.top(5))


def test_onnxruntime_profile_names_the_conv_kernels(tmp_path):
    path = tmp_path / "m.onnx"
    export_onnx(random_model("1-2"), path, batch=1, height=H, width=W)
    with OnnxRuntimeRunner(path, threads=1) as runner:
        profile = runner.profile(np.zeros((1, 3, H, W), np.float32))
    kernels = {row["kernel"] for row in profile.by_kernel()}
    assert kernels & {"Conv", "FusedConv"} and "ConvTranspose" in kernels
    assert all(op.calls == 1 for op in profile.ops)  # the profiled run only, not the warm-up


def test_openvino_profile_reports_executed_kernels(tmp_path):
    pytest.importorskip("openvino", reason="openvino is not installed (pip install openvino)")
    from export.to_openvino import export_openvino
    from runtimes.openvino import OpenVINORunner

    path = tmp_path / "m.xml"
    export_openvino(random_model("1-2"), path, batch=1, height=H, width=W)
    with OpenVINORunner(path, threads=1) as runner:
        profile = runner.profile(np.zeros((1, 3, H, W), np.float32))
    conv = [op for op in profile.ops if op.kernel.startswith("Convolution:")]
    assert conv and all(op.precision == "f32" for op in conv)


def test_runners_without_a_hook_say_so():
    class Plain(Runner):
        runtime = "plain"

        def _activate(self):
            pass

        def _infer(self, x):
            return x

    with Plain() as runner, pytest.raises(RuntimeUnavailable, match="no profiler"):
        runner.profile(np.zeros((1, 3, 4, 4), np.float32))
    with Plain() as runner, pytest.raises(RuntimeUnavailable, match="cannot mark"):
        runner.mark_outputs(np.zeros((1, 3, 4, 4), np.float32))
