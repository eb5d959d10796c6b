"""TorchScript runner: a module saved by :func:`export.to_torchscript.export_torchscript`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from dmphn_core.errors import DMPHNError
from dmphn_core.model import DMPHNConfig
from dmphn_core.artifact import METADATA_KEY

from .base import Runner, require_cuda
from .torch_utils import tf32_mode, torchscript_on_purpose


class TorchScriptRunner(Runner):
    """Loads the traced float32 module on ``device``; ``tf32`` allows TF32 math on CUDA."""

    runtime = "torchscript"

    def __init__(self, path: str | os.PathLike, *, device: str = "cpu", precision: str = "fp32", name: str | None = None) -> None:
        super().__init__(device=device, precision=precision, name=name)
        self.path = Path(path)
        self.module: torch.jit.ScriptModule | None = None
        self.metadata: dict[str, Any] | None = None

    @classmethod
    def unavailable_reason(cls, device: str, precision: str) -> str | None:
        reason = super().unavailable_reason(device, precision)
        if reason:
            return reason
        if precision not in ("fp32", "tf32"):
            return f"the traced TorchScript module is float32; {precision} is not offered (use aoti or compile)"
        return None

    def _activate(self) -> None:
        if self.device == "cuda":
            require_cuda(f"runtime {self.runtime}")
        if not self.path.is_file():
            raise DMPHNError(f"TorchScript file not found: {self.path}")
        extra_files = {METADATA_KEY: ""}
        try:
            with torchscript_on_purpose():
                module = torch.jit.load(str(self.path), map_location=self.device, _extra_files=extra_files)
        except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError/ValueError with long C++ traces
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise DMPHNError(f"cannot load TorchScript module {self.path}: {first}") from None
        self.module = module.eval()
        if extra_files[METADATA_KEY]:
            self.metadata = json.loads(extra_files[METADATA_KEY])
            self.model_config = DMPHNConfig.from_dict(self.metadata["config"])
            self.input_shape = tuple(self.metadata["export_shape"])

    def _infer(self, x: torch.Tensor) -> torch.Tensor:
        assert self.module is not None
        with torch.inference_mode(), tf32_mode(self.precision == "tf32"):
            return self.module(x)

    def _deactivate(self) -> None:
        self.module = None

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "torch": torch.__version__, "artifact": str(self.path)}
