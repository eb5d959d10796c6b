import numpy as np
import pytest
import torch

from dmphn_core.errors import DMPHNError
from runtimes.aoti import AOTIRunner
from runtimes.torch_eager import TorchRunner


@pytest.mark.slow  # the run's AOTInductor package: a 30-70 s compile
def test_runner_matches_eager_at_two_batch_sizes(aoti_package):
    path, model = aoti_package
    with AOTIRunner(path) as runner, TorchRunner(model) as eager:
        assert runner.input_shape == (None, 3, 32, 64) and runner.load_seconds > 0
        for batch in (1, 2):
            x = np.random.default_rng(batch).random((batch, 3, 32, 64), dtype=np.float32)
            assert np.abs(runner.infer(x) - eager.infer(x)).max() <= 1e-4
        with pytest.raises(DMPHNError, match=r"built for input \?x3x32x64"):
            runner.infer(np.zeros((1, 3, 64, 64), np.float32))


@pytest.mark.slow  # the run's AOTInductor package: a 30-70 s compile
def test_precision_mismatch_is_refused(aoti_package):
    path, _ = aoti_package
    with pytest.raises(DMPHNError, match="built for cpu/fp32"):
        AOTIRunner(path, precision="bf16").activate()


def test_corrupt_package_is_a_one_line_error(tmp_path):
    bad = tmp_path / "bad.pt2"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DMPHNError, match="cannot load AOTInductor package"):
        AOTIRunner(bad).activate()


def test_unavailable_reasons():
    assert AOTIRunner.unavailable_reason("cpu", "fp32") is None
    assert "fp16" in AOTIRunner.unavailable_reason("cpu", "fp16")
    assert "TF32" in AOTIRunner.unavailable_reason("cpu", "tf32")


@pytest.mark.slow  # the run's AOTInductor package: a 30-70 s compile
def test_packages_run_with_tf32_off(aoti_package, monkeypatch):
    """A package's convolutions call ATen, which reads cuDNN's TF32 switch at run time (PyTorch's
    default is on): an fp32 package on CUDA ran TF32 until the runner turned it off (H200, 2026-11-26)."""
    path, _ = aoti_package
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    seen = []
    with AOTIRunner(path) as runner:
        package = runner.package
        runner.package = lambda x: (seen.append(torch.backends.cudnn.allow_tf32), package(x))[1]
        runner.infer(torch.rand(1, 3, 32, 64))
    assert seen == [False]
    assert torch.backends.cudnn.allow_tf32  # the caller's setting is back
