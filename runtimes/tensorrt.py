"""TensorRT engine runner (TensorRT 10 ``execute_async_v3``), optionally replayed as a CUDA graph.

Inputs and outputs are torch CUDA tensors whose addresses are handed to TensorRT, and the
engine runs on torch's current stream, so torch's ordering and events cover it. The JSON
sidecar written by :func:`export.to_tensorrt.build_engine` gives the model config.

With ``cuda_graph=True`` the first call at each input shape captures ``execute_async_v3``
into a CUDA graph over static I/O buffers (:class:`runtimes.cuda_graph.CudaGraphCache`);
later calls copy the input in, replay, and return a copy of the output.

Never run on the CPU-only development host: it needs the ``tensorrt`` package and a GPU.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import torch

from dmphn_core.artifact import INPUT_NAME, OUTPUT_NAME, sidecar_path
from dmphn_core.errors import DMPHNError, RuntimeUnavailable
from dmphn_core.model import DMPHNConfig

from .base import Runner, require_cuda
from .cuda_graph import CudaGraphCache


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
        self._runtime = self._engine = self._context = self._logger = None
        self._graphs: CudaGraphCache | None = None

    @classmethod
    def unavailable_reason(cls, device: str, precision: str) -> str | None:
        if device != "cuda":
            return "TensorRT engines run on CUDA GPUs only"
        reason = super().unavailable_reason(device, precision)
        if reason:
            return reason
        if importlib.util.find_spec("tensorrt") is None:
            return "the `tensorrt` Python package is not installed (pip install tensorrt on a CUDA host)"
        return None

    # -- lifecycle -------------------------------------------------------------------
    def _activate(self) -> None:
        require_cuda(f"runtime {self.runtime}")
        reason = self.unavailable_reason(self.device, self.precision)
        if reason:
            raise RuntimeUnavailable(f"{self.name}: {reason}")
        import tensorrt as trt

        if not self.engine_path.is_file():
            raise DMPHNError(f"TensorRT engine not found: {self.engine_path}")
        self.metadata = self._read_sidecar()
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
        self._context = engine.create_execution_context()
        if self.cuda_graph:
            self._graphs = CudaGraphCache(self._run, self.name)
        self.input_shape = tuple(None if dim < 0 else int(dim) for dim in engine.get_tensor_shape(INPUT_NAME))

    def _read_sidecar(self) -> dict[str, Any] | None:
        if not self.sidecar.is_file():
            return None  # an engine without sidecar still runs; only the model config is unknown
        try:
            metadata = json.loads(self.sidecar.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DMPHNError(f"cannot read TensorRT sidecar {self.sidecar}: {exc}") from None
        built = metadata.get("precision")
        if built and built != self.precision:
            raise DMPHNError(f"{self.engine_path} was built for {built}, but the runner was asked for {self.precision}")
        if "config" in metadata:
            self.model_config = DMPHNConfig.from_dict(metadata["config"])
        return metadata

    def _deactivate(self) -> None:
        if self._graphs is not None:
            self._graphs.clear()
            self._graphs = None
        self._context = self._engine = self._runtime = None
        torch.cuda.empty_cache()

    # -- inference -------------------------------------------------------------------
    def _bind(self, x: torch.Tensor) -> torch.Tensor:
        """Set the input shape and I/O addresses; return the (new) output tensor."""
        context = self._context
        if not context.set_input_shape(INPUT_NAME, tuple(x.shape)):
            raise DMPHNError(f"{self.name}: input {tuple(x.shape)} is outside the engine's optimisation profile")
        output = torch.empty(tuple(context.get_tensor_shape(OUTPUT_NAME)), dtype=torch.float32, device=x.device)
        context.set_tensor_address(INPUT_NAME, x.data_ptr())
        context.set_tensor_address(OUTPUT_NAME, output.data_ptr())
        return output

    def _enqueue(self, stream: torch.cuda.Stream) -> None:
        if not self._context.execute_async_v3(stream.cuda_stream):
            raise DMPHNError(f"{self.name}: TensorRT execute_async_v3 failed")

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        """Bind and enqueue on the current stream (inside a capture: the capturing stream)."""
        output = self._bind(x)
        self._enqueue(torch.cuda.current_stream())
        return output

    def _infer(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        return self._graphs(x) if self._graphs is not None else self._run(x)

    def describe(self) -> dict[str, Any]:
        info = {**super().describe(), "cuda_graph": self.cuda_graph, "engine": str(self.engine_path)}
        if self.metadata:
            info["tensorrt"] = self.metadata.get("tensorrt", {}).get("version")
            info["gpu"] = self.metadata.get("gpu")
        return info
