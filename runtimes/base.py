"""The one small interface every runtime implements (after Polygraphy's runners).

A runner is built cheaply from a *loader* (a callable or a path); the expensive part
(deserialising an engine, creating a session, compiling) happens in :meth:`Runner.activate`.
Use it as a context manager::

    with OnnxRuntimeRunner("model.onnx") as runner:
        y = runner.infer(x)          # x: (B, 3, H, W) float32 in [0, 1], numpy or torch

``infer`` returns the same kind of array it was given: numpy in, float32 numpy out; a torch
tensor in, a float32 torch tensor out on the runner's device (so GPU timing loops need no
host copies). Runners never modify their input.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import numpy as np
import torch

from dmphn_core.errors import DMPHNError, RuntimeUnavailable
from dmphn_core.model import DMPHNConfig

DEVICES = ("cpu", "cuda")
#: Precisions a runner may declare. ``tf32`` is fp32 storage with TF32 matrix units (CUDA);
#: ``int8`` runs a quantized artifact (only runners that list it in ``precisions`` do).
PRECISIONS = ("fp32", "tf32", "fp16", "bf16", "int8")


class Runner(abc.ABC):
    """Base class: subclasses implement ``_activate``, ``_infer`` and ``_deactivate``."""

    #: registry key (``dmphn-bench --runtime KEY``)
    runtime: ClassVar[str] = ""

    def __init__(self, *, device: str = "cpu", precision: str = "fp32", name: str | None = None) -> None:
        if device not in DEVICES:
            raise DMPHNError(f"unknown device {device!r}; use one of {DEVICES}")
        if precision not in PRECISIONS:
            raise DMPHNError(f"unknown precision {precision!r}; use one of {PRECISIONS}")
        self.device = device
        self.precision = precision
        self.name = name or f"{self.runtime}-{device}-{precision}"
        self.is_active = False
        #: (B, 3, H, W) the loaded artifact accepts; None where any valid shape goes.
        #: Entries may be None for dynamic axes. Set by ``_activate`` when known.
        self.input_shape: tuple[int | None, ...] | None = None
        #: Config of the loaded model (levels, layout -> size block for padding). Set by
        #: ``_activate`` from the model or from the artifact's metadata.
        self.model_config: DMPHNConfig | None = None

    @classmethod
    def unavailable_reason(cls, device: str, precision: str) -> str | None:
        """Why this runtime cannot run here with these settings; None when it can.

        Subclasses add their own checks (package installed, precision supported) and call
        this for the common ones. Cheap: it must not load models or create sessions.
        """
        if device == "cuda" and not torch.cuda.is_available():
            return "no CUDA device here (torch.cuda.is_available() is False)"
        if precision == "tf32" and device != "cuda":
            return "TF32 is a mode of NVIDIA GPUs; it does not exist on the CPU"
        if precision == "int8" and "int8" not in getattr(cls, "precisions", ()):
            return f"runtime {cls.runtime} has no int8 mode (int8 runs a quantized artifact: runtime ov)"
        return None

    # -- lifecycle -------------------------------------------------------------------
    def activate(self) -> None:
        if not self.is_active:
            self._activate()
            self.is_active = True

    def deactivate(self) -> None:
        if self.is_active:
            self._deactivate()
            self.is_active = False

    def __enter__(self) -> "Runner":
        self.activate()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.deactivate()

    # -- inference -------------------------------------------------------------------
    def infer(self, x: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """(B, 3, H, W) float in [0, 1] -> (B, 3, H, W) float32, same array kind as ``x``."""
        if not self.is_active:
            raise DMPHNError(f"runner {self.name} is not active; use it in a `with` block or call activate()")
        as_numpy = isinstance(x, np.ndarray)
        tensor = torch.from_numpy(x) if as_numpy else x
        self._check_input(tensor)
        out = self._infer(tensor.to(self.device, torch.float32))
        if as_numpy:
            return out.float().cpu().numpy()
        return out.float()

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != 3:
            raise DMPHNError(f"{self.name}: expected (B, 3, H, W) RGB input, got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise DMPHNError(f"{self.name}: expected float input in [0, 1], got {x.dtype}")
        if self.input_shape is not None:
            for got, want in zip(x.shape, self.input_shape):
                if want is not None and got != want:
                    expected = "x".join("?" if d is None else str(d) for d in self.input_shape)
                    raise DMPHNError(
                        f"{self.name}: artifact was built for input {expected}, got {'x'.join(map(str, x.shape))}"
                    )

    def synchronize(self) -> None:
        """Wait for queued device work (timing needs it on CUDA)."""
        if self.device == "cuda":
            torch.cuda.synchronize()

    def describe(self) -> dict[str, Any]:
        """What a report needs to name this runner: key, device, precision, versions."""
        return {"runner": self.name, "runtime": self.runtime, "device": self.device, "precision": self.precision}

    @abc.abstractmethod
    def _activate(self) -> None: ...

    @abc.abstractmethod
    def _infer(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` is float32 on ``self.device``; return the output on ``self.device``."""

    def _deactivate(self) -> None:
        """Free what ``_activate`` loaded. Default: nothing to free."""


def require_cuda(what: str) -> None:
    """Raise a one-line reason when CUDA is missing (runners call it in ``_activate``)."""
    if not torch.cuda.is_available():
        raise RuntimeUnavailable(f"{what} needs a CUDA GPU; torch.cuda.is_available() is False on this host")
