"""torch.compile runner: the eager model compiled by Inductor in-process, on first call.

Compilation happens at the first ``infer`` of each new shape (Inductor needs the shape);
its duration is kept in ``compile_seconds`` so benchmarks report it apart from latency.
Modes: ``default``, ``max-autotune`` (Triton autotuning on CUDA, plus Inductor's CUDA graphs),
``max-autotune-no-cudagraphs`` (the autotuning alone) and ``reduce-overhead`` (Inductor's own
CUDA graphs). ``cuda_graph=True`` instead captures the compiled call in an explicit CUDA graph
(:class:`runtimes.cuda_graph.CudaGraphCache`). ``channels_last``: NHWC weights and input
(:func:`runtimes.torch_utils.default_channels_last` when None); ``freezing``: Inductor folds
the weights into the graph as constants (``torch._inductor.config.freezing``), which lets it
pre-pack convolution weights and fold constant arithmetic.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from typing import Any

import torch

from dmphn_core.errors import DMPHNError
from dmphn_core.precision import torch_dtype

from .base import Runner, require_cuda
from .profiling import profile_torch
from .cuda_graph import CudaGraphCache
from .torch_eager import ModelSource, _resolve_model
from .torch_utils import Float32IO, default_channels_last, tf32_mode

COMPILE_MODES = ("default", "max-autotune", "max-autotune-no-cudagraphs", "reduce-overhead")


def _inductor_config():
    import torch._inductor.config  # imported on use: a module of Inductor's, loaded only when compiling

    return torch._inductor.config


class TorchCompileRunner(Runner):
    runtime = "compile"
    artifact_format = "checkpoint"
    default_for_format = False  # a checkpoint file runs with "torch" unless asked
    precisions = ("fp32", "tf32", "fp16", "bf16")
    rank = 6
    uses_torch_cpu_kernels = True
    _profile = profile_torch  # torch.profiler around infer (runtimes.profiling)
    options = ("mode", "cuda_graph", "channels_last", "freezing")

    def __init__(
        self,
        model: ModelSource = None,
        *,
        device: str = "cpu",
        precision: str = "fp32",
        mode: str = "default",
        cuda_graph: bool = False,
        channels_last: bool | None = None,
        freezing: bool = False,
        dynamic: bool = False,
        name: str | None = None,
        threads: int | None = None,
    ) -> None:
        if mode not in COMPILE_MODES:
            raise DMPHNError(f"unknown torch.compile mode {mode!r}; use one of {', '.join(COMPILE_MODES)}")
        if cuda_graph and (device != "cuda" or mode == "reduce-overhead"):
            raise DMPHNError("cuda_graph needs device cuda, and mode reduce-overhead already uses CUDA graphs")
        super().__init__(device=device, precision=precision, name=name, threads=threads)
        self._source = model
        self.mode = mode
        self.cuda_graph = cuda_graph
        self.channels_last = default_channels_last(device, precision) if channels_last is None else channels_last
        self.freezing = freezing
        self.dynamic = dynamic
        self.compile_seconds: float | None = None
        self._compiled = None
        self._graphs: CudaGraphCache | None = None
        self._seen_shapes: set[tuple[int, ...]] = set()

    @classmethod
    def unavailable_reason(cls, device: str, precision: str) -> str | None:
        reason = super().unavailable_reason(device, precision)
        if reason:
            return reason
        if device == "cpu" and precision == "fp16":
            return "fp16 on the CPU has no fast kernels in Inductor; use bf16 or fp32 on the CPU"
        if device == "cpu" and not (shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")):
            return "Inductor on the CPU compiles C++: no C++ compiler (g++/clang++) on PATH"
        return None

    def _activate(self) -> None:
        if self.device == "cuda":
            require_cuda(f"runtime {self.runtime}")
        model = _resolve_model(self._source, per_patch=False).to(self.device).eval()
        self.model_config = model.config
        wrapped = Float32IO(model, torch_dtype(self.precision), self.channels_last).eval()
        self._compiled = torch.compile(wrapped, mode=self.mode, dynamic=self.dynamic, fullgraph=True)
        if self.cuda_graph:
            self._graphs = CudaGraphCache(self._call_compiled, self.name)

    def _call_compiled(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "reduce-overhead":
            # Inductor's graphs reuse their output buffers; mark a new step and copy out
            torch.compiler.cudagraph_mark_step_begin()
            return self._compiled(x).clone()
        return self._compiled(x)

    def _infer(self, x: torch.Tensor) -> torch.Tensor:
        assert self._compiled is not None
        key = tuple(x.shape)
        first = key not in self._seen_shapes
        begin = time.perf_counter()
        # Inductor reads its config when it compiles: at the first call of each shape
        compiling = _inductor_config().patch(freezing=self.freezing) if first else contextlib.nullcontext()
        with compiling, torch.inference_mode(), tf32_mode(self.precision == "tf32"):
            out = self._graphs(x) if self._graphs is not None else self._call_compiled(x)
        if first:
            self.synchronize()
            self._seen_shapes.add(key)
            # first call at a shape = compile (+ capture) + one run; later calls are plain runs
            self.compile_seconds = (self.compile_seconds or 0.0) + time.perf_counter() - begin
        return out

    def _deactivate(self) -> None:
        self._compiled = None
        if self._graphs is not None:
            self._graphs.clear()
            self._graphs = None
        self._seen_shapes.clear()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "torch": torch.__version__, "mode": self.mode, "cuda_graph": self.cuda_graph,
                "channels_last": self.channels_last, "freezing": self.freezing, "compile_s": self.compile_seconds}
