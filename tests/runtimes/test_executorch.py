"""ExecuTorch runner: fp32 parity and array kinds, metadata from the .pte, thread pool, errors, registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("executorch", reason="executorch is not installed (pip install 'dmphn-deploy[edge]')")

from dmphn_core.artifact import detect_format, read_metadata  # noqa: E402
from dmphn_core.errors import DMPHNError  # noqa: E402
from export.exporter import export_verified  # noqa: E402
from export.verify import reference_output, verification_inputs  # noqa: E402
from runtimes import runner_class, runtime_names  # noqa: E402
from runtimes.executorch import ExecuTorchRunner, thread_count  # noqa: E402
from runtimes.registry import runtime_for_format  # noqa: E402
from tests.conftest import built_once, random_model  # noqa: E402

H, W = 32, 64


@pytest.fixture(scope="session")
def pte(tmp_path_factory):
    """DMPHN-1-2 (seed 5) as a verified fp32 .pte at 1x3x32x64, and the model."""
    model = random_model("1-2", seed=5)
    path = built_once(tmp_path_factory, "et_1-2_fp32_32x64.pte",
                      lambda target: export_verified("executorch", model, target, batch=1, height=H, width=W, log=None))
    return model, path


def test_registry_finds_it_by_its_declared_vocabulary():
    assert "et" in runtime_names() and runner_class("et") is ExecuTorchRunner
    assert runtime_for_format("executorch") == "et"
    assert ExecuTorchRunner.devices == ("cpu",) and set(ExecuTorchRunner.precisions) == {"fp32", "fp16", "int8"}
    assert ExecuTorchRunner.unavailable_reason("cpu", "bf16") is not None
    assert ExecuTorchRunner.unavailable_reason("cpu", "fp32") is None


def test_fp32_matches_pytorch_for_numpy_and_torch(pte):
    model, path = pte
    x = verification_inputs(1, H, W)[1][1]
    before = x.copy()
    with ExecuTorchRunner(path) as runner:
        assert runner.model_config == model.config and runner.input_shape == (1, 3, H, W)
        y_np = runner.infer(x)
        y_torch = runner.infer(torch.from_numpy(x))
    np.testing.assert_array_equal(x, before)  # the input is read in place, never written
    assert isinstance(y_np, np.ndarray) and y_np.dtype == np.float32
    assert isinstance(y_torch, torch.Tensor) and y_torch.dtype == torch.float32
    assert np.abs(y_np - reference_output(model, x)).max() < 1e-4
    np.testing.assert_array_equal(y_np, y_torch.numpy())


def test_metadata_lives_in_the_program(pte):
    model, path = pte
    assert detect_format(path) == "executorch"
    metadata = read_metadata(path)
    assert metadata["config"] == model.config.to_dict()
    assert metadata["export_shape"] == [1, 3, H, W] and metadata["precision"] == "fp32"
    assert metadata["executorch"]["delegate"] == "XnnpackBackend"


def test_threads_resize_the_pool_and_are_reported(pte):
    _, path = pte
    before = thread_count()
    try:
        with ExecuTorchRunner(path, threads=1) as runner:
            assert thread_count() == 1 and runner.describe()["threads"] == 1
    finally:
        from executorch.extension.pybindings import portable_lib

        portable_lib._unsafe_reset_threadpool(before)
    with pytest.raises(DMPHNError, match="threads must be at least 1"):
        ExecuTorchRunner(path, threads=0)


def test_other_shapes_and_precisions_are_refused_in_one_line(pte, tmp_path):
    _, path = pte
    with ExecuTorchRunner(path) as runner, pytest.raises(DMPHNError, match=r"built for input 1x3x32x64, got 1x3x64x64"):
        runner.infer(np.zeros((1, 3, 64, 64), np.float32))
    with pytest.raises(DMPHNError, match="is a fp32 program; run it at precision fp32, not int8"):
        ExecuTorchRunner(path, precision="int8").activate()
    with pytest.raises(DMPHNError, match="not found"):
        ExecuTorchRunner(tmp_path / "missing.pte").activate()
    garbage = tmp_path / "garbage.pte"
    garbage.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(DMPHNError, match="cannot read ExecuTorch program"):
        ExecuTorchRunner(garbage).activate()
