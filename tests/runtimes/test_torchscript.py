import numpy as np
import pytest

from dmphn_core.errors import DMPHNError
from runtimes.torch_eager import TorchRunner
from runtimes.torchscript import TorchScriptRunner
from tests.conftest import TINY_HW


def test_runner_matches_eager_and_reads_metadata(torchscript_module):
    path, model = torchscript_module
    x = np.random.default_rng(0).random((1, 3, *TINY_HW), dtype=np.float32)
    with TorchScriptRunner(path) as runner, TorchRunner(model) as eager:
        assert np.abs(runner.infer(x) - eager.infer(x)).max() <= 1e-4
        assert runner.model_config == model.config and runner.input_shape == (1, 3, *TINY_HW)
        with pytest.raises(DMPHNError, match="built for input 1x3x64x128"):
            runner.infer(np.zeros((1, 3, 32, 64), np.float32))


def test_missing_and_corrupt_files_are_one_line_errors(tmp_path):
    with pytest.raises(DMPHNError, match="not found"):
        TorchScriptRunner(tmp_path / "none.ts").activate()
    bad = tmp_path / "bad.ts"
    bad.write_bytes(b"PK\x03\x04 broken zip")
    with pytest.raises(DMPHNError, match="cannot load TorchScript module"):
        TorchScriptRunner(bad).activate()


def test_precisions_offered():
    assert TorchScriptRunner.unavailable_reason("cpu", "fp32") is None
    assert "float32" in TorchScriptRunner.unavailable_reason("cpu", "bf16")
