"""TorchScript runner: a module saved by :func:`export.to_torchscript.export_torchscript`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from dmphn_core.artifact import config_of, read_metadata
from dmphn_core.errors import DMPHNError, exception_line

from .base import Runner, require_cuda
from .profiling import profile_torch
from .torch_utils import torchscript_on_purpose


class TorchScriptRunner(Runner):
    """Loads the traced float32 module on ``device``."""

    runtime = "torchscript"
    artifact_format = "torchscript"
    precisions = ("fp32",)
    # The trace fixes cuDNN's TF32 switch in each convolution (export_torchscript traces it off),
    # so a runtime tf32 setting would change nothing.
    precision_note = "the traced TorchScript module is float32 with TF32 off; use aoti or compile"
    rank = 2
    _profile = profile_torch  # torch.profiler around infer (runtimes.profiling)
    # TorchScript's profiling executor records shapes on the first call and builds the optimised
    # plan on the second (measured: 308 and 251 ms, then 215-235 ms, DMPHN-1 at 256x256, 2 threads):
    # a timing that includes them times the JIT, not the module.
    min_warmup_calls = 2

    def __init__(
        self, path: str | os.PathLike, *, device: str = "cpu", precision: str = "fp32", name: str | None = None,
        threads: int | None = None,
    ) -> None:
        super().__init__(device=device, precision=precision, name=name, threads=threads)
        self.path = Path(path)
        self.module: torch.jit.ScriptModule | None = None
        self.metadata: dict[str, Any] | None = None

    def _activate(self) -> None:
        if self.device == "cuda":
            require_cuda(f"runtime {self.runtime}")
        if not self.path.is_file():
            raise DMPHNError(f"TorchScript file not found: {self.path}")
        try:
            with torchscript_on_purpose():
                module = torch.jit.load(str(self.path), map_location=self.device)
        except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError/ValueError with long C++ traces
            first = exception_line(exc)
            raise DMPHNError(f"cannot load TorchScript module {self.path}: {first}") from None
        self.module = module.eval()
        self.metadata = read_metadata(self.path, "torchscript")
        if self.metadata:
            self.model_config = config_of(self.metadata)
            self.input_shape = tuple(self.metadata["export_shape"])

    def _infer(self, x: torch.Tensor) -> torch.Tensor:
        assert self.module is not None
        with torch.inference_mode():
            return self.module(x)

    def _deactivate(self) -> None:
        self.module = None

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "torch": torch.__version__, "artifact": str(self.path)}
