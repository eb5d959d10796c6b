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
from collections.abc import Collection, Iterable, Iterator
from typing import Any, ClassVar

import numpy as np
import torch

from dmphn_core.errors import DMPHNError, RuntimeUnavailable
from dmphn_core.model import DMPHNConfig
from dmphn_core.precision import PRECISIONS

from .layers import MarkedOutputs
from .profiling import Profile
from .torch_utils import cpu_emulation_reason

DEVICES = ("cpu", "cuda")


class Runner(abc.ABC):
    """Base class: subclasses implement ``_activate``, ``_infer`` and ``_deactivate``.

    Each subclass declares its vocabulary as class attributes; the registry
    (:mod:`runtimes.registry`) is built from them, so a new runtime is one new file.
    """

    #: registry key (``dmphn-bench --runtime KEY``)
    runtime: ClassVar[str] = ""
    #: the artifact format it loads (:data:`dmphn_core.artifact.FORMATS`); None: it runs a
    #: checkpoint or an nn.Module built in Python
    artifact_format: ClassVar[str | None] = None
    #: where it can run, and in which precisions (:data:`dmphn_core.precision.PRECISIONS`)
    devices: ClassVar[tuple[str, ...]] = DEVICES
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)
    #: why the precisions it lacks are missing, appended to the generic reason
    precision_note: ClassVar[str] = ""
    #: the device it runs on when asked for none ("auto": CUDA when torch sees one)
    default_device: ClassVar[str] = "auto"
    #: whether a file of ``artifact_format`` runs with this runtime when none is named
    default_for_format: ClassVar[bool] = True
    #: position in reports and in ``--runtime all`` (lower first)
    rank: ClassVar[int] = 100
    #: place among the fast fp32-faithful paths that ``--runtime auto`` tries, per device (lower
    #: first, from this project's benchmarks); a device missing here is never picked automatically.
    #: A ``"device:precision"`` key (e.g. ``"cpu:int8"``) overrides the device's rank at that precision
    auto_rank: ClassVar[dict[str, int]] = {}
    #: what it talks to when it is a client of a service rather than a runner of a file or module
    #: (the benchmark matrix then lists it as skipped, naming this)
    needs_service: ClassVar[str | None] = None
    #: calls before its latency is steady, whatever warm-up a benchmark asks for (a JIT's profiling runs)
    min_warmup_calls: ClassVar[int] = 0
    #: keyword options of the constructor a benchmark spec may set (``mode``, ``cuda_graph``)
    options: ClassVar[tuple[str, ...]] = ()
    #: whether it computes on the CPU with PyTorch's kernels, which emulate bf16/fp16 where the
    #: CPU lacks the instructions (:func:`runtimes.torch_utils.cpu_emulation_reason`)
    uses_torch_cpu_kernels: ClassVar[bool] = False

    def __init__(
        self, *, device: str = "cpu", precision: str = "fp32", name: str | None = None, threads: int | None = None
    ) -> None:
        if device not in DEVICES:
            raise DMPHNError(f"unknown device {device!r}; use one of {DEVICES}")
        if precision not in PRECISIONS:
            raise DMPHNError(f"unknown precision {precision!r}; use one of {PRECISIONS}")
        self.device = device
        self.precision = precision
        self.name = name or f"{self.runtime}-{device}-{precision}"
        #: CPU threads for runtimes that own a thread pool (None: the runtime's default)
        self.threads = threads
        self.is_active = False
        #: (B, 3, H, W) the loaded artifact accepts; None where any valid shape goes.
        #: Entries may be None for dynamic axes. Set by ``_activate`` when known.
        self.input_shape: tuple[int | None, ...] | None = None
        #: Config of the loaded model (levels, layout -> size block for padding). Set by
        #: ``_activate`` from the model or from the artifact's metadata.
        self.model_config: DMPHNConfig | None = None
        #: throughput mode (:meth:`prefer_throughput`): the runtime may keep several inputs in flight
        self.throughput = False
        #: parallel streams asked for in throughput mode (None: the runtime's own choice)
        self.streams: int | None = None

    @classmethod
    def unavailable_reason(cls, device: str, precision: str) -> str | None:
        """Why this runtime cannot run here with these settings; None when it can.

        Subclasses add their own checks (package installed, precision supported) and call
        this for the common ones (the declared devices and precisions among them). Cheap: it
        must not load models or create sessions.
        """
        if device not in cls.devices:
            return f"{cls.runtime} runs on {' and '.join(cls.devices)} only, not {device}"
        if device == "cuda" and not torch.cuda.is_available():
            return "no CUDA device here (torch.cuda.is_available() is False)"
        if precision == "tf32" and device != "cuda":
            return "TF32 is a mode of NVIDIA GPUs; it does not exist on the CPU"
        if precision not in cls.precisions:
            note = f" ({cls.precision_note})" if cls.precision_note else ""
            return f"{cls.runtime} offers {', '.join(cls.precisions)}, not {precision}{note}"
        return None

    @classmethod
    def emulation_reason(cls, device: str, precision: str) -> str | None:
        """Why this pair would run here only emulated, the right numbers far slower than fp32; None when not.

        Such a pair still runs when asked for directly (tests judge its numbers on tiny inputs);
        benchmarks and parity make it a skipped row unless told to run it anyway.
        """
        return cpu_emulation_reason(precision) if cls.uses_torch_cpu_kernels and device == "cpu" else None

    @classmethod
    def resolve_device(cls, device: str | None) -> str:
        """``device`` itself, or for None/"auto" the class default (CUDA when there is one)."""
        if device not in (None, "auto"):
            return device
        if cls.default_device != "auto":
            return cls.default_device
        return "cuda" if torch.cuda.is_available() and "cuda" in cls.devices else "cpu"

    # -- lifecycle -------------------------------------------------------------------
    def _require_available(self) -> None:
        """Raise :class:`RuntimeUnavailable` with :meth:`unavailable_reason` for this runner's settings
        (runners whose artifact needs a package or CPU support call it first in ``_activate``)."""
        reason = self.unavailable_reason(self.device, self.precision)
        if reason:
            raise RuntimeUnavailable(f"{self.name}: {reason}")

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

    # -- throughput ------------------------------------------------------------------
    def prefer_throughput(self, streams: int | None = None) -> None:
        """Before :meth:`activate`: set the runner up for many inputs at once rather than one fast.

        Runtimes with their own concurrency use it (OpenVINO's THROUGHPUT hint, ONNX Runtime's
        parallel sessions); ``streams`` overrides the count they would pick. The others ignore it
        and :meth:`infer_stream` runs their inputs one after another (batch is then the lever).
        """
        if self.is_active:
            raise DMPHNError(f"{self.name}: call prefer_throughput() before activate()")
        if streams is not None and streams < 1:
            raise DMPHNError(f"streams must be at least 1, got {streams}")
        self.throughput, self.streams = True, streams

    def concurrency(self) -> dict[str, int | None]:
        """What :meth:`infer_stream` runs with: ``streams`` (parallel executions), ``requests``
        (inputs in flight) and ``batch`` (images per input; None where the artifact takes any)."""
        batch = self.input_shape[0] if self.input_shape else None
        return {"streams": 1, "requests": 1, "batch": batch}

    def infer_stream(self, inputs: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """(B, 3, H, W) float32 numpy arrays -> their outputs, in input order.

        Runtimes override it to keep :meth:`concurrency` ``requests`` inputs in flight; at most
        that many are read ahead of the output being yielded. Default: one after another.
        """
        for x in inputs:
            yield self.infer(x)

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

    def profile(self, x: np.ndarray | torch.Tensor) -> Profile:
        """One warm-up and one profiled call of ``x`` (B, 3, H, W) under this runtime's profiler.

        Raises RuntimeUnavailable for runtimes without a profiler hook (``_profile``).
        """
        if not self.is_active:
            raise DMPHNError(f"runner {self.name} is not active; use it in a `with` block or call activate()")
        tensor = torch.from_numpy(x) if isinstance(x, np.ndarray) else x
        self._check_input(tensor)
        return self._profile(tensor.to(self.device, torch.float32))

    def _profile(self, x: torch.Tensor) -> Profile:
        """Runners with a profiler override this (torch family: ``runtimes.profiling.profile_torch``)."""
        raise RuntimeUnavailable(f"{self.runtime} has no profiler hook")

    def mark_outputs(self, x: np.ndarray | torch.Tensor, inputs_of: Collection[int] = ()) -> MarkedOutputs:
        """One inference of ``x`` (B, 3, H, W) with every convolution's output (and the inputs of the
        convolutions ``inputs_of``) kept, in execution order (:mod:`runtimes.layers`).

        Raises RuntimeUnavailable for runtimes that cannot mark outputs (``_mark_outputs``).
        """
        if not self.is_active:
            raise DMPHNError(f"runner {self.name} is not active; use it in a `with` block or call activate()")
        tensor = torch.from_numpy(x) if isinstance(x, np.ndarray) else x
        self._check_input(tensor)
        return self._mark_outputs(tensor.to(self.device, torch.float32), inputs_of)

    def _mark_outputs(self, x: torch.Tensor, inputs_of: Collection[int]) -> MarkedOutputs:
        raise RuntimeUnavailable(f"{self.runtime} cannot mark intermediate outputs (dmphn-parity --layers runs "
                                 "the eager torch model, ONNX Runtime and OpenVINO)")

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
