"""PyTorch eager runners: the static-shape model and the per-patch reference."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Collection
from typing import Any

import torch
from torch import nn

from dmphn_core.checkpoint import DEMO_CHECKPOINT, load_checkpoint
from dmphn_core.precision import torch_dtype
from dmphn_core.reference import PerPatchDMPHN

from .base import Runner, require_cuda
from .layers import MarkedOutputs, mark_torch
from .profiling import profile_torch
from .torch_utils import default_channels_last, memory_format, tf32_mode, to_compute_input


class ModelFromCheckpoint:
    """Loader: build the eval-mode model of a checkpoint when called (None: the demo model)."""

    def __init__(self, checkpoint: str | os.PathLike | None = None, *, per_patch: bool = False) -> None:
        self.checkpoint = checkpoint
        self.per_patch = per_patch

    def __call__(self) -> nn.Module:
        ckpt = load_checkpoint(self.checkpoint or DEMO_CHECKPOINT)
        model = ckpt.build_model()
        if self.per_patch:
            reference = PerPatchDMPHN(ckpt.config)
            reference.load_state_dict(model.state_dict())
            model = reference.eval()
        return model


ModelSource = nn.Module | Callable[[], nn.Module] | str | os.PathLike | None


def _resolve_model(source: ModelSource, per_patch: bool) -> nn.Module:
    """A module this runner owns: the caller's module is copied, never moved or cast."""
    if isinstance(source, nn.Module):
        if per_patch and not isinstance(source, PerPatchDMPHN):
            reference = PerPatchDMPHN(source.config)
            reference.load_state_dict(source.state_dict())
            return reference.eval()
        return copy.deepcopy(source)
    if callable(source):
        return source()
    return ModelFromCheckpoint(source, per_patch=per_patch)()


class TorchRunner(Runner):
    """Eager static-shape DMPHN. ``model``: a module, a loader, or a checkpoint path.

    ``channels_last`` (NHWC weights and input, on the CPU or CUDA): None takes
    :func:`runtimes.torch_utils.default_channels_last`.
    """

    runtime = "torch"
    artifact_format = "checkpoint"
    precisions = ("fp32", "tf32", "fp16", "bf16")
    rank = 0
    per_patch = False
    uses_torch_cpu_kernels = True
    _profile = profile_torch  # torch.profiler around infer (runtimes.profiling)
    options = ("channels_last",)

    def __init__(
        self, model: ModelSource = None, *, device: str = "cpu", precision: str = "fp32",
        channels_last: bool | None = None,
        name: str | None = None, threads: int | None = None,
    ) -> None:
        super().__init__(device=device, precision=precision, name=name, threads=threads)
        self._source = model
        self.channels_last = default_channels_last(device, precision) if channels_last is None else channels_last
        self.model: nn.Module | None = None

    def _activate(self) -> None:
        if self.device == "cuda":
            require_cuda(f"runtime {self.runtime}")
        model = _resolve_model(self._source, self.per_patch).to(self.device, torch_dtype(self.precision)).eval()
        self.model = model.to(memory_format=memory_format(self.channels_last))
        self.model_config = model.config

    def _infer(self, x: torch.Tensor) -> torch.Tensor:
        assert self.model is not None
        x = to_compute_input(x, torch_dtype(self.precision), self.channels_last)
        with torch.inference_mode(), tf32_mode(self.precision == "tf32"):
            return self.model(x)

    def _mark_outputs(self, x: torch.Tensor, inputs_of: Collection[int]) -> MarkedOutputs:
        assert self.model is not None
        return mark_torch(self.model, lambda: self._infer(x), inputs_of)

    def _deactivate(self) -> None:
        self.model = None
        if self.device == "cuda":
            torch.cuda.empty_cache()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "torch": torch.__version__, "channels_last": self.channels_last}


class TorchReferenceRunner(TorchRunner):
    """Eager per-patch reference (one encoder call per patch), for comparison only."""

    runtime = "torch-ref"
    default_for_format = False  # a checkpoint file runs with "torch" unless asked
    rank = 1
    per_patch = True
