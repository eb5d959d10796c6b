import numpy as np
import pytest
import torch

from dmphn_core.errors import DMPHNError
from runtimes import runner_class, runtime_names
from runtimes.base import Runner


class DoublingRunner(Runner):
    runtime = "double"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.events = []

    def _activate(self):
        self.events.append("activate")
        self.input_shape = (None, 3, 4, 8)

    def _infer(self, x):
        return x * 2

    def _deactivate(self):
        self.events.append("deactivate")


def test_context_manager_activates_once_and_deactivates():
    runner = DoublingRunner()
    with runner as active:
        active.activate()  # idempotent
        assert runner.is_active
    assert runner.events == ["activate", "deactivate"] and not runner.is_active


def test_infer_returns_the_kind_it_was_given_and_keeps_input():
    x = np.full((2, 3, 4, 8), 0.25, np.float32)
    with DoublingRunner() as runner:
        out = runner.infer(x)
        assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out[0, 0, 0, 0] == 0.5
        tensor = torch.from_numpy(x.copy())
        out_t = runner.infer(tensor)
        assert isinstance(out_t, torch.Tensor) and torch.equal(tensor, torch.from_numpy(x))


@pytest.mark.parametrize(
    ("shape", "message"),
    [((1, 4, 4, 8), r"expected \(B, 3, H, W\)"), ((3, 4, 8), r"expected \(B, 3, H, W\)"), ((1, 3, 8, 8), "built for input \\?x3x4x8")],
)
def test_infer_rejects_wrong_shapes_with_one_line(shape, message):
    with DoublingRunner() as runner, pytest.raises(DMPHNError, match=message):
        runner.infer(np.zeros(shape, np.float32))


def test_infer_before_activate_and_bad_settings_are_clear_errors():
    with pytest.raises(DMPHNError, match="not active"):
        DoublingRunner().infer(np.zeros((1, 3, 4, 8), np.float32))
    with pytest.raises(DMPHNError, match="unknown precision"):
        DoublingRunner(precision="int3")
    with pytest.raises(DMPHNError, match="unknown device"):
        DoublingRunner(device="tpu")
    with DoublingRunner() as runner, pytest.raises(DMPHNError, match="expected float"):
        runner.infer(np.zeros((1, 3, 4, 8), np.uint8))


def test_unavailable_reason_for_cuda_and_tf32_on_cpu_hosts():
    assert DoublingRunner.unavailable_reason("cpu", "fp32") is None
    assert "TF32" in DoublingRunner.unavailable_reason("cpu", "tf32")
    if not torch.cuda.is_available():
        assert "CUDA" in DoublingRunner.unavailable_reason("cuda", "fp32")


def test_registry_names_every_runtime_and_rejects_unknown():
    assert {"torch", "torch-ref", "torchscript", "ort", "trt", "aoti", "compile"} <= set(runtime_names())
    assert runner_class("torch").runtime == "torch"
    with pytest.raises(DMPHNError, match="unknown runtime .tflite."):
        runner_class("tflite")
