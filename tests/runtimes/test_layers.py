"""Marked intermediate outputs: torch hooks, ONNX graph outputs and OpenVINO outputs agree point by point."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from export.to_onnx import export_onnx
from runtimes.layers import mark_onnx, mark_torch
from runtimes.onnxruntime import OnnxRuntimeRunner
from runtimes.torch_eager import TorchRunner
from tests.conftest import random_model

H, W = 32, 64


@pytest.fixture(scope="module")
def model_and_onnx(tmp_path_factory):
    model = random_model("1-2", seed=3)
    path = tmp_path_factory.mktemp("layers") / "m.onnx"
    export_onnx(model, path, batch=1, height=H, width=W)
    return model, path


def _x() -> np.ndarray:
    return np.random.default_rng(1).random((1, 3, H, W), dtype=np.float32)


def test_torch_hooks_follow_execution_order_and_keep_asked_inputs(model_and_onnx):
    model, _ = model_and_onnx
    with torch.inference_mode():
        marked = mark_torch(model, lambda: model(torch.from_numpy(_x())), inputs_of=[1, 2])
    convs = sum(isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) for m in model.modules())
    assert len(marked.conv_outputs) == len(marked.conv_names) == convs
    assert marked.conv_names[0].startswith("encoders.1.")  # level 2 (two patches) runs first
    assert set(marked.conv_inputs) == {1, 2}
    np.testing.assert_array_equal(marked.conv_inputs[1], marked.conv_outputs[0])  # first conv -> residual block
    np.testing.assert_array_equal(marked.conv_inputs[2], np.maximum(marked.conv_outputs[1], 0))  # conv-ReLU-conv


def test_onnx_marks_every_convolution_and_matches_torch(model_and_onnx):
    model, path = model_and_onnx
    data, outputs, inputs, _ = mark_onnx(onnx.load(str(path)), inputs_of=[1])
    convs = sum(isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) for m in model.modules())
    assert len(outputs) == convs and set(inputs) == {1}
    assert len(onnx.load_from_string(data).graph.output) == 1 + convs
    with TorchRunner(model) as reference, OnnxRuntimeRunner(path, threads=1) as candidate:
        truth, got = reference.mark_outputs(_x(), [1]), candidate.mark_outputs(_x(), [1])
    for ours, theirs in zip(got.conv_outputs, truth.conv_outputs):
        np.testing.assert_allclose(ours, theirs, atol=1e-4)
    np.testing.assert_allclose(got.conv_inputs[1], truth.conv_inputs[1], atol=1e-4)


def test_openvino_marks_convolutions_before_their_bias(model_and_onnx, tmp_path):
    pytest.importorskip("openvino", reason="openvino is not installed (pip install openvino)")
    from export.to_openvino import export_openvino
    from runtimes.openvino import OpenVINORunner

    model, _ = model_and_onnx
    path = tmp_path / "m.xml"
    export_openvino(model, path, batch=1, height=H, width=W)
    with TorchRunner(model) as reference, OpenVINORunner(path, threads=1) as candidate:
        truth, got = reference.mark_outputs(_x()), candidate.mark_outputs(_x())
    assert got.without_bias and len(got.conv_outputs) == len(truth.conv_outputs)
    bias = model.get_submodule(truth.conv_names[0]).bias.detach().numpy().reshape(1, -1, 1, 1)
    np.testing.assert_allclose(got.conv_outputs[0], truth.conv_outputs[0] - bias, atol=1e-4)
