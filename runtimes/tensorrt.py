"""TensorRT engine runner (TensorRT 10 ``execute_async_v3``), optionally replayed as a CUDA graph.

Inputs and outputs are torch CUDA tensors whose addresses are handed to TensorRT. The engine
runs on the runner's own CUDA stream, never on torch's current stream (by default the legacy
default stream, on which TensorRT warns and synchronises more): that stream waits for the
caller's stream before the engine reads the input, the caller's stream waits for it before
anyone reads the output, and both tensors are recorded on the stream that uses them so the
caching allocator does not hand their memory out early. The JSON sidecar written by
:func:`export.to_tensorrt.build_engine` gives the model config, the TensorRT version and
the GPU; they are checked against the running library and GPU (compute capability and model
name) before deserialising. An engine without a sidecar (``trtexec``'s) still runs, its model
config unknown.

With ``cuda_graph=True`` the first call at each input shape captures ``execute_async_v3``
into a CUDA graph over static I/O buffers (:class:`runtimes.cuda_graph.CudaGraphCache`),
with one execution context per captured shape (as trtexec keeps one per graph): re-binding
one context to another shape under a graph captured from it is outside TensorRT's
documented use. Later calls copy the input in, replay, and return a copy of the output.

Never run on a GPU so far: it needs the ``tensorrt`` package and a CUDA device. The CPU tests
drive it through a fake ``tensorrt`` module and a fake ``cuda_api`` (:class:`TorchCuda`).
"""

from __future__ import annotations

import importlib.util
import os
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import torch

from dmphn_core.artifact import INPUT_NAME, OUTPUT_NAME, config_of, parse_metadata, sidecar_path
from dmphn_core.errors import DMPHNError

from .base import Runner, require_cuda
from .cuda_graph import CudaGraphCache
from .tensorrt_compat import INSTALL_HINT, TENSOR_ALIGNMENT, engine_mismatch


class TorchCuda:
    """The few CUDA calls the runner makes, in one place so CPU tests can stand in for them."""

    def new_stream(self) -> torch.cuda.Stream:
        return torch.cuda.Stream()

    def current_stream(self) -> torch.cuda.Stream:
        return torch.cuda.current_stream()

    def use(self, stream: torch.cuda.Stream) -> AbstractContextManager:
        return torch.cuda.stream(stream)

    def handle(self, stream: torch.cuda.Stream) -> int:
        return stream.cuda_stream

    def record(self, tensor: torch.Tensor, stream: torch.cuda.Stream) -> None:
        tensor.record_stream(stream)

    def compute_capability(self) -> str:
        major, minor = torch.cuda.get_device_capability()
        return f"{major}.{minor}"

    def device_name(self) -> str:
        return torch.cuda.get_device_name()


class TensorRTRunner(Runner):
    """Runs a serialized TensorRT engine; ``precision`` must match the one it was built with."""

    runtime = "trt"
    artifact_format = "tensorrt"
    devices = ("cuda",)
    default_device = "cuda"
    precisions = ("fp32", "tf32", "fp16")
    precision_note = "engines here are built in fp32, tf32 or fp16"
    rank = 4
    auto_rank = {"cuda": 1}
    options = ("cuda_graph",)
    #: CUDA streams and device queries (CPU tests swap in a fake).
    cuda_api: TorchCuda = TorchCuda()
    #: Graph capture per input shape (CPU tests swap in a stand-in).
    graph_cache = CudaGraphCache

    def __init__(
        self,
        engine_path: str | os.PathLike,
        *,
        precision: str = "fp16",
        cuda_graph: bool = False,
        name: str | None = None,
        sidecar: str | os.PathLike | None = None,
        device: str = "cuda",
        threads: int | None = None,
    ) -> None:
        if device != "cuda":
            raise DMPHNError(f"TensorRT engines run on CUDA only, not {device!r}")
        super().__init__(device="cuda", precision=precision, name=name or f"trt{'+graph' if cuda_graph else ''}-cuda-{precision}")
        self.engine_path = Path(engine_path)
        self.sidecar = Path(sidecar) if sidecar else sidecar_path(self.engine_path)
        self.cuda_graph = cuda_graph
        self.metadata: dict[str, Any] | None = None
        self._runtime = self._engine = self._context = self._logger = self._stream = None
        #: one execution context per captured input shape (cuda_graph=True only)
        self._graph_contexts: dict[tuple[int, ...], Any] = {}
        self._graphs: CudaGraphCache | None = None

    @classmethod
    def unavailable_reason(cls, device: str, precision: str) -> str | None:
        if device != "cuda":
            return "TensorRT engines run on CUDA GPUs only"
        reason = super().unavailable_reason(device, precision)
        if reason:
            return reason
        if importlib.util.find_spec("tensorrt") is None:
            return f"the `tensorrt` Python package is not installed ({INSTALL_HINT})"
        return None

    # -- lifecycle -------------------------------------------------------------------
    def _activate(self) -> None:
        require_cuda(f"runtime {self.runtime}")
        self._require_available()
        import tensorrt as trt

        if not self.engine_path.is_file():
            raise DMPHNError(f"TensorRT engine not found: {self.engine_path}")
        self.metadata = self._read_sidecar()
        mismatch = engine_mismatch(self.metadata, trt.__version__, self.cuda_api.compute_capability(),
                                   self.cuda_api.device_name())
        if mismatch:
            raise DMPHNError(f"cannot load TensorRT engine {self.engine_path}: {mismatch}; rebuild it here "
                             f"with `dmphn-export trt`")
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if engine is None:
            raise DMPHNError(
                f"cannot load TensorRT engine {self.engine_path}: corrupt, or built by another TensorRT "
                f"version or for another GPU (this is TensorRT {trt.__version__})"
            )
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        if INPUT_NAME not in names or OUTPUT_NAME not in names:
            raise DMPHNError(f"{self.engine_path} is not a DMPHN engine: I/O tensors are {names}")
        for tensor in (INPUT_NAME, OUTPUT_NAME):
            if engine.get_tensor_dtype(tensor) != trt.float32:
                raise DMPHNError(f"{self.engine_path}: tensor {tensor!r} is {engine.get_tensor_dtype(tensor)}, not float32")
        self._engine = engine
        if self.cuda_graph:
            self._graphs = self.graph_cache(self._run_graphed, self.name)
        else:
            self._context = self._new_context()
        self._stream = self.cuda_api.new_stream()
        self.input_shape = tuple(None if dim < 0 else int(dim) for dim in engine.get_tensor_shape(INPUT_NAME))

    def _new_context(self):
        context = self._engine.create_execution_context()
        if context is None:  # the binding returns None where TensorRT returns nullptr
            raise DMPHNError(f"{self.name}: TensorRT could not create an execution context for {self.engine_path} "
                             "(out of GPU memory?)")
        return context

    def _read_sidecar(self) -> dict[str, Any] | None:
        if not self.sidecar.is_file():
            return None  # an engine without sidecar still runs; only the model config is unknown
        try:
            metadata = parse_metadata(self.sidecar.read_bytes(), self.sidecar)
        except OSError as exc:
            raise DMPHNError(f"cannot read TensorRT sidecar {self.sidecar}: {exc}") from None
        if metadata is None:
            return None
        built = metadata.get("precision")
        if built and built != self.precision:
            raise DMPHNError(f"{self.engine_path} was built for {built}, but the runner was asked for {self.precision}")
        self.model_config = config_of(metadata)
        return metadata

    def _deactivate(self) -> None:
        # graphs before the contexts they were captured from, contexts before their engine
        if self._graphs is not None:
            self._graphs.clear()
            self._graphs = None
        self._graph_contexts.clear()
        self._context = None
        self._engine = None
        self._runtime = None
        self._stream = None
        torch.cuda.empty_cache()

    # -- inference -------------------------------------------------------------------
    def _bind(self, context, x: torch.Tensor) -> torch.Tensor:
        """Set the input shape and I/O addresses on ``context``; return the (new) output tensor."""
        if not context.set_input_shape(INPUT_NAME, tuple(x.shape)):
            raise DMPHNError(f"{self.name}: input {tuple(x.shape)} is outside the engine's optimisation profile")
        output = torch.empty(tuple(context.get_tensor_shape(OUTPUT_NAME)), dtype=torch.float32, device=x.device)
        for name, tensor in ((INPUT_NAME, x), (OUTPUT_NAME, output)):
            if not context.set_tensor_address(name, tensor.data_ptr()):
                raise DMPHNError(f"{self.name}: TensorRT refused the address {tensor.data_ptr():#x} of {name!r} "
                                 f"(device buffers need {TENSOR_ALIGNMENT}-byte alignment)")
        return output

    def _run(self, context, x: torch.Tensor) -> torch.Tensor:
        """Bind and enqueue on the current stream: the runner's own, or inside a capture the capturing one."""
        output = self._bind(context, x)
        if not context.execute_async_v3(self.cuda_api.handle(self.cuda_api.current_stream())):
            raise DMPHNError(f"{self.name}: TensorRT execute_async_v3 failed")
        return output

    def _run_graphed(self, x: torch.Tensor) -> torch.Tensor:
        """``_run`` on the context of ``x.shape`` (created on first use), so graphs never share one."""
        key = tuple(x.shape)
        if key not in self._graph_contexts:
            self._graph_contexts[key] = self._new_context()
        return self._run(self._graph_contexts[key], x)

    def _infer(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        if x.data_ptr() % TENSOR_ALIGNMENT:
            x = x.clone()  # a view at an offset into another buffer; fresh allocations are aligned
        caller, own = self.cuda_api.current_stream(), self._stream
        own.wait_stream(caller)  # the caller's stream wrote x
        with self.cuda_api.use(own):
            y = self._graphs(x) if self._graphs is not None else self._run(self._context, x)
        caller.wait_stream(own)  # whoever reads y on the caller's stream reads it after the engine wrote it
        self.cuda_api.record(x, own)  # x is read on our stream: keep its memory until that is done
        self.cuda_api.record(y, caller)  # y was allocated on our stream and is consumed on the caller's
        return y

    def describe(self) -> dict[str, Any]:
        info = {**super().describe(), "cuda_graph": self.cuda_graph, "engine": str(self.engine_path)}
        if self.metadata:
            info["tensorrt"] = self.metadata.get("tensorrt", {}).get("version")
            info["gpu"] = self.metadata.get("gpu")
        return info
