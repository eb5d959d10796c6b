"""AOTInductor runner: a .pt2 package from :func:`export.to_aoti.export_aoti`."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch

from dmphn_core.artifact import config_of, read_metadata
from dmphn_core.errors import DMPHNError, exception_line

from .base import Runner, require_cuda
from .profiling import profile_torch
from .torch_utils import tf32_mode


class AOTIRunner(Runner):
    """Loads a compiled package; ``device`` and ``precision`` must be those it was built for."""

    runtime = "aoti"
    artifact_format = "aoti"
    precisions = ("fp32", "fp16", "bf16")
    uses_torch_cpu_kernels = True
    _profile = profile_torch  # torch.profiler around infer (runtimes.profiling)
    precision_note = "packages are built in fp32, fp16 or bf16; TF32 is not a package option"
    rank = 5

    def __init__(
        self, path: str | os.PathLike, *, device: str = "cpu", precision: str = "fp32", name: str | None = None,
        threads: int | None = None,
    ) -> None:
        super().__init__(device=device, precision=precision, name=name, threads=threads)
        self.path = Path(path)
        self.package = None
        self.metadata: dict[str, Any] | None = None
        self.load_seconds: float | None = None

    @classmethod
    def unavailable_reason(cls, device: str, precision: str) -> str | None:
        reason = super().unavailable_reason(device, precision)
        if reason:
            return reason
        if not hasattr(torch, "_inductor") or not hasattr(torch._inductor, "aoti_load_package"):
            return f"torch {torch.__version__} has no AOTInductor packaging (needs torch >= 2.6)"
        if device == "cpu" and precision == "fp16":
            return "fp16 on the CPU has no fast kernels in Inductor; use bf16 or fp32 on the CPU"
        return None

    def _activate(self) -> None:
        if self.device == "cuda":
            require_cuda(f"runtime {self.runtime}")
        if not self.path.is_file():
            raise DMPHNError(f"AOTInductor package not found: {self.path}")
        begin = time.perf_counter()
        try:
            package = torch._inductor.aoti_load_package(str(self.path))
        except Exception as exc:  # noqa: BLE001 - the loader raises RuntimeError with C++ context
            first = exception_line(exc)
            raise DMPHNError(f"cannot load AOTInductor package {self.path}: {first}") from None
        self.load_seconds = time.perf_counter() - begin
        self.metadata = read_metadata(self.path, "aoti")
        if self.metadata:
            built_for = (self.metadata.get("aoti", {}).get("device"), self.metadata.get("precision"))
            if built_for != (self.device, self.precision):
                raise DMPHNError(
                    f"{self.path} was built for {built_for[0]}/{built_for[1]}, "
                    f"but the runner was asked for {self.device}/{self.precision}"
                )
            self.model_config = config_of(self.metadata)
            export_shape = self.metadata["export_shape"]
            dynamic = self.metadata["input"]["shape"][0] == "batch"
            self.input_shape = (None if dynamic else export_shape[0], *export_shape[1:])
        self.package = package

    def _infer(self, x: torch.Tensor) -> torch.Tensor:
        assert self.package is not None
        # The package's convolutions call ATen, which reads cuDNN's TF32 switch at run time
        # (PyTorch's default is on): off, so an fp32 package computes in fp32.
        with torch.inference_mode(), tf32_mode(False):
            return self.package(x)

    def _deactivate(self) -> None:
        self.package = None

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "torch": torch.__version__, "artifact": str(self.path), "load_s": self.load_seconds}
