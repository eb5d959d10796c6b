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
        # two shapes, B replayed twice, then A again on other data: A's graph after B's capture
        y_graph = [graph.infer(x[:1]), graph.infer(x), graph.infer(x), graph.infer(x[1:])]
        torch.cuda.synchronize()
    assert y_plain.device.type == "cuda"
    ref = reference_output(model, x.cpu().numpy(), "cuda")
    assert np.abs(y_plain.cpu().numpy() - ref).max() <= 1e-4
    assert torch.allclose(y_graph[1], y_plain, atol=1e-6) and torch.equal(y_graph[1], y_graph[2])
    assert torch.allclose(y_graph[0], y_plain[:1], atol=1e-6)
    assert torch.allclose(y_graph[3], y_plain[1:], atol=1e-6)
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


# -- the runner's call sequence against a fake `tensorrt` and a fake CUDA seam (CPU) ----------
# tests/fakes/: TensorRT 10 signatures and documented failure values only, host memory for
# "device" buffers; these tests check our binding, stream and error logic, not TensorRT.
FH, FW = 8, 16


@pytest.fixture
def fake(monkeypatch, tmp_path):
    """(fake tensorrt, fake CUDA seam, engine path): a dynamic-batch (1..4) fp32 "copy" engine."""
    from export import to_tensorrt
    from export.to_tensorrt import build_engine
    from runtimes import tensorrt as trt_runner
    from tests.fakes.fake_cuda import FakeCuda, fake_graph_cache
    from tests.fakes.fake_tensorrt import install_fake_tensorrt
    from tests.fakes.onnx_graphs import overflow_chain

    # torch's host allocations are 64-byte aligned, not 256: the same check, at the host's granularity
    trt = install_fake_tensorrt(monkeypatch, alignment=64)
    monkeypatch.setattr(trt_runner, "TENSOR_ALIGNMENT", 64)
    monkeypatch.setattr(to_tensorrt, "_gpu_info", lambda: {"name": "Fake GPU", "compute_capability": "9.0",
                                                           "cuda": "12.9"})
    cuda = FakeCuda(trt.state.log, compute_capability="9.0")
    monkeypatch.setattr(TensorRTRunner, "cuda_api", cuda)
    monkeypatch.setattr(TensorRTRunner, "graph_cache", fake_graph_cache(trt.state))
    onnx_path = overflow_chain(tmp_path / "chain.onnx", FH, FW, dynamic_batch=True)
    engine = tmp_path / "m.engine"
    build_engine(random_model(1), engine, batch=1, height=FH, width=FW, precision="fp32", onnx_path=onnx_path,
                 max_batch=4)
    trt.state.log.clear()
    return trt, cuda, engine


def _on_host(runner: TensorRTRunner) -> TensorRTRunner:
    runner.device = "cpu"  # the fake engine's "device" memory is host memory: let infer() keep tensors there
    return runner


def _x(batch: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, FH, FW, generator=torch.Generator().manual_seed(seed))


def test_fake_engine_runs_on_the_runners_own_stream(fake):
    trt, cuda, engine = fake
    with TensorRTRunner(engine, precision="fp32") as runner:
        assert runner.model_config == random_model(1).config and runner.input_shape == (None, 3, FH, FW)
        x = _x(2)
        y = _on_host(runner).infer(x)
    torch.testing.assert_close(y, x, rtol=0, atol=0)  # the fake engine copies: y is the bound output
    [own] = cuda.created
    log = [entry for entry in trt.state.log if entry[0] != "set_tensor_address"]
    execute = log.index(("execute_async_v3", 1, own.handle))
    assert own.handle != 0 and trt.state.calls("execute_async_v3") == [("execute_async_v3", 1, own.handle)]
    assert log.index(("wait_stream", own.name, "default")) < log.index(("use", own.name)) < execute
    assert execute < log.index(("leave", own.name)) < log.index(("wait_stream", "default", own.name))
    recorded = {(ptr, stream) for _, ptr, stream in trt.state.calls("record_stream")}
    assert (y.data_ptr(), "default") in recorded  # the output, allocated on our stream, read on the caller's
    bound_input = next(addr for _, _, name, addr in trt.state.calls("set_tensor_address") if name == "blurred")
    assert (bound_input, own.name) in recorded  # the input, read on our stream
    assert cuda.current is cuda.default


def test_fake_cuda_graph_keeps_one_context_per_shape_and_replays_a_after_b(fake):
    trt, _, engine = fake
    with TensorRTRunner(engine, precision="fp32", cuda_graph=True) as runner:
        _on_host(runner)
        assert trt.state.calls("create_execution_context") == []  # graph mode: contexts come per shape
        a1, b, a2 = _x(1, seed=1), _x(2, seed=2), _x(1, seed=3)
        outputs = [runner.infer(a1), runner.infer(b), runner.infer(a2), runner.infer(b * 0.5)]
    for y, x in zip(outputs, (a1, b, a2, b * 0.5)):
        torch.testing.assert_close(y, x, rtol=0, atol=0)  # A after B replays A's own bindings
    shapes_by_context: dict[int, set] = {}
    for _, context, _, shape in trt.state.calls("set_input_shape"):
        shapes_by_context.setdefault(context, set()).add(shape)
    assert sorted(shapes_by_context.values(), key=len) == [{(1, 3, FH, FW)}, {(2, 3, FH, FW)}]
    assert len(trt.state.calls("create_execution_context")) == 2


def test_fake_misaligned_input_is_copied_before_binding(fake):
    trt, _, engine = fake
    storage = torch.rand(1 * 3 * FH * FW + 1)
    x = storage[1:].view(1, 3, FH, FW)  # contiguous, 4 bytes past an aligned start
    assert x.data_ptr() % 64
    with TensorRTRunner(engine, precision="fp32") as runner:
        y = _on_host(runner).infer(x)
    torch.testing.assert_close(y, x, rtol=0, atol=0)
    assert all(addr % 64 == 0 for *_, addr in trt.state.calls("set_tensor_address"))


@pytest.mark.parametrize(
    ("failing", "message"),
    [("create_execution_context", "could not create an execution context"),
     ("set_tensor_address", "refused the address"),
     ("execute_async_v3", "execute_async_v3 failed")],
)
def test_fake_failure_values_become_one_line_errors(fake, failing, message):
    trt, _, engine = fake
    trt.state.fail.add(failing)
    runner = TensorRTRunner(engine, precision="fp32")
    with pytest.raises(DMPHNError, match=message) as info:
        runner.activate()
        _on_host(runner).infer(_x(1))
    assert len(str(info.value).splitlines()) == 1


def test_fake_input_outside_the_profile(fake):
    _, _, engine = fake
    with TensorRTRunner(engine, precision="fp32") as runner, pytest.raises(DMPHNError, match="optimisation profile"):
        _on_host(runner).infer(_x(5))


@pytest.mark.parametrize(
    ("sidecar_change", "message"),
    [({"tensorrt": {"version": "10.3.0.26"}}, r"built with TensorRT 10\.3\.0\.26, but this is TensorRT 10\.16"),
     ({"gpu": {"name": "NVIDIA A100", "compute_capability": "8.0"}}, r"compute capability 8\.0 .*this GPU has .*9\.0"),
     ({"gpu": {"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}},
      r"built on a NVIDIA H100 80GB HBM3, but this GPU is a Fake GPU")],
)
def test_fake_sidecar_mismatch_is_refused_before_deserialising(fake, sidecar_change, message):
    from dmphn_core.artifact import sidecar_path

    trt, _, engine = fake
    sidecar = sidecar_path(engine)
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), **sidecar_change}))
    with pytest.raises(DMPHNError, match=message):
        TensorRTRunner(engine, precision="fp32").activate()
    assert trt.state.calls("deserialize_cuda_engine") == []


def test_fake_corrupt_engine_is_one_line_error(fake, tmp_path):
    trt, _, _ = fake
    bad = tmp_path / "bad.engine"
    bad.write_bytes(b"not an engine" * 10)
    with pytest.raises(DMPHNError, match="cannot load TensorRT engine"):
        TensorRTRunner(bad, precision="fp32").activate()
    assert trt.state.calls("deserialize_cuda_engine")


def test_fake_engine_without_sidecar_runs_with_unknown_config(fake):
    """A trtexec engine has no sidecar: it still loads and runs (the name check needs the sidecar)."""
    from dmphn_core.artifact import sidecar_path

    trt, _, engine = fake
    sidecar_path(engine).unlink()
    with TensorRTRunner(engine, precision="fp32") as runner:
        x = _x(1)
        torch.testing.assert_close(_on_host(runner).infer(x), x)  # the fake engine copies its input
        assert runner.metadata is None and runner.model_config is None
