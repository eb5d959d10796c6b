"""TensorRT runner: availability reasons everywhere; engine runs, CUDA graphs and sidecar checks on CUDA + tensorrt."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dmphn_core.errors import DMPHNError, RuntimeUnavailable
from export.verify import reference_output, verification_inputs
from runtimes import runner_class
from runtimes.tensorrt import TensorRTRunner
from tests.conftest import TINY_HW, TRT_REASON, random_model, requires_tensorrt

H, W = TINY_HW



def test_registry_key():
    assert runner_class("trt") is TensorRTRunner


def test_unavailable_reasons_name_what_is_missing():
    assert "CUDA GPUs only" in TensorRTRunner.unavailable_reason("cpu", "fp16")
    reason = TensorRTRunner.unavailable_reason("cuda", "fp16")
    if TRT_REASON is not None:
        assert reason is not None and ("tensorrt" in reason or "CUDA" in reason)
    assert TensorRTRunner.unavailable_reason("cuda", "bf16") is not None
    with pytest.raises(DMPHNError, match="CUDA only"):
        TensorRTRunner("m.engine", device="cpu")


@pytest.mark.skipif(TRT_REASON is None, reason="tensorrt and CUDA are present here")
def test_activate_without_cuda_or_tensorrt_raises_runtime_unavailable(tmp_path):
    runner = TensorRTRunner(tmp_path / "m.engine")
    with pytest.raises(RuntimeUnavailable):
        runner.activate()
    assert not runner.is_active


# -- CUDA + tensorrt ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    from export.to_tensorrt import build_engine

    model = random_model("1-2", seed=2)
    path = tmp_path_factory.mktemp("trt") / "m.engine"
    build_engine(model, path, batch=1, height=H, width=W, precision="fp32", max_batch=2)
    return model, path


@requires_tensorrt
@pytest.mark.tensorrt
def test_torch_cuda_io_and_cuda_graph_agree(engine):
    model, path = engine
    x = torch.from_numpy(verification_inputs(2, H, W)[1][1]).cuda()
    before = x.clone()
    with TensorRTRunner(path, precision="fp32") as plain, TensorRTRunner(path, precision="fp32", cuda_graph=True) as graph:
        assert plain.model_config == model.config and plain.input_shape == (None, 3, H, W)
        y_plain = plain.infer(x)
        y_graph = [graph.infer(x[:1]), graph.infer(x), graph.infer(x)]  # two shapes, one replayed twice
        torch.cuda.synchronize()
    assert y_plain.device.type == "cuda"
    ref = reference_output(model, x.cpu().numpy(), "cuda")
    assert np.abs(y_plain.cpu().numpy() - ref).max() <= 1e-4
    assert torch.allclose(y_graph[1], y_plain, atol=1e-6) and torch.equal(y_graph[1], y_graph[2])
    assert torch.allclose(y_graph[0], y_plain[:1], atol=1e-6)
    assert torch.equal(x, before)


@requires_tensorrt
@pytest.mark.tensorrt
def test_precision_must_match_sidecar(engine):
    _, path = engine
    with pytest.raises(DMPHNError, match="built for fp32"):
        TensorRTRunner(path, precision="fp16").activate()


@requires_tensorrt
@pytest.mark.tensorrt
def test_engine_without_sidecar_still_runs(engine, tmp_path):
    model, path = engine
    copy = tmp_path / "bare.engine"
    copy.write_bytes(path.read_bytes())
    with TensorRTRunner(copy, precision="fp32") as runner:
        assert runner.model_config is None
        x = verification_inputs(1, H, W)[0][1]
        assert np.abs(runner.infer(x) - reference_output(model, x, "cuda")).max() <= 1e-4


@requires_tensorrt
@pytest.mark.tensorrt
def test_corrupt_engine_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.engine"
    bad.write_bytes(b"not an engine" * 100)
    (tmp_path / "bad.engine.json").write_text(json.dumps({"precision": "fp16"}))
    with pytest.raises(DMPHNError, match="cannot load TensorRT engine"):
        TensorRTRunner(bad, precision="fp16").activate()
