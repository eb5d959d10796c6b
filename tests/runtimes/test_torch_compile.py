import numpy as np
import pytest
import torch

from dmphn_core.errors import DMPHNError
from runtimes.torch_compile import TorchCompileRunner
from runtimes.torch_eager import TorchRunner
from tests.conftest import random_model


def test_compiled_model_matches_eager_and_reports_compile_time():
    model = random_model(2)
    x = np.random.default_rng(0).random((1, 3, 32, 64), dtype=np.float32)
    with TorchCompileRunner(model) as runner, TorchRunner(model) as eager:
        assert runner.compile_seconds is None
        first = runner.infer(x)
        compile_seconds = runner.compile_seconds
        second = runner.infer(x)
        assert compile_seconds > 0 and runner.compile_seconds == compile_seconds  # only the first call compiles
        np.testing.assert_array_equal(first, second)
        assert np.abs(first - eager.infer(x)).max() <= 1e-4
        assert runner.model_config == model.config


def test_bad_settings_are_clear_errors():
    with pytest.raises(DMPHNError, match="unknown torch.compile mode"):
        TorchCompileRunner(random_model(1), mode="turbo")
    with pytest.raises(DMPHNError, match="cuda_graph needs device cuda"):
        TorchCompileRunner(random_model(1), cuda_graph=True)
    assert "fp16" in TorchCompileRunner.unavailable_reason("cpu", "fp16")


def test_channels_last_and_freezing_compile_the_same_model():
    """NHWC weights and input plus Inductor freezing: the same numbers as eager, and the global
    Inductor switch is back as it was once the compile is done."""
    import torch._inductor.config as inductor_config

    model = random_model(1)
    x = torch.rand(1, 3, 32, 64, generator=torch.Generator().manual_seed(3))
    freezing_before = inductor_config.freezing
    runner = TorchCompileRunner(model, channels_last=True, freezing=True)
    assert runner.describe()["channels_last"] is True and runner.describe()["freezing"] is True
    with runner, TorchRunner(model) as eager:
        assert runner._compiled is not None
        weight = next(runner._compiled._orig_mod.parameters())
        assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
        out = runner.infer(x)
        assert (out - eager.infer(x)).abs().max().item() <= 1e-4
    assert inductor_config.freezing == freezing_before
    assert TorchCompileRunner(model, device="cpu", precision="bf16").channels_last  # the eager runner's CPU default


@pytest.mark.gpu
@pytest.mark.parametrize(("mode", "cuda_graph", "channels_last"), [
    ("default", True, False), ("reduce-overhead", False, False), ("max-autotune", False, False),
    ("max-autotune-no-cudagraphs", False, True), ("default", True, True)])
def test_cuda_modes_match_eager(mode, cuda_graph, channels_last):
    model = random_model(4)
    x = torch.rand(1, 3, 64, 128, device="cuda")
    with TorchCompileRunner(model, device="cuda", mode=mode, cuda_graph=cuda_graph, channels_last=channels_last,
                            freezing=channels_last) as runner, TorchRunner(
        model, device="cuda"
    ) as eager:
        a, b = runner.infer(x), runner.infer(x)
        torch.testing.assert_close(a, b)  # replays return fresh outputs, not an overwritten buffer
        assert (a - eager.infer(x)).abs().max().item() <= 1e-3
