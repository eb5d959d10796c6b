"""ONNX Runtime runner: CPU, and the CUDA / TensorRT execution providers of onnxruntime-gpu.

Providers by (device, precision), unless ``provider`` names one:

* cpu, fp32: ``CPUExecutionProvider`` (numpy in and out).
* cuda, fp32 / tf32: ``CUDAExecutionProvider`` with ``use_tf32`` off / on (ORT turns TF32
  on by default on Ampere+, so an fp32 run must turn it off).
* cuda, fp16: ``TensorrtExecutionProvider`` with ``trt_fp16_enable`` (the graph stays
  float32; TensorRT picks fp16 kernels), CUDA EP as fallback for unsupported nodes.

On CUDA, inputs and outputs stay torch CUDA tensors, bound with IOBinding on torch's
current stream, so timing loops make no host copies.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dmphn_core.artifact import INPUT_NAME, OUTPUT_NAME, config_of, read_metadata
from dmphn_core.errors import DMPHNError, RuntimeUnavailable, exception_line

from .base import Runner, require_cuda
from .layers import MarkedOutputs, mark_onnx
from .profiling import Profile, onnxruntime_rows, read_onnxruntime_trace, timed
from .streams import default_streams, run_in_order

PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


def _available_providers() -> list[str]:
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    return ort.get_available_providers()


def default_provider(device: str, precision: str) -> str:
    """Short provider name (``cpu``/``cuda``/``tensorrt``) used for ``device`` and ``precision``."""
    if device == "cpu":
        return "cpu"
    return "tensorrt" if precision == "fp16" else "cuda"


class OnnxRuntimeRunner(Runner):
    """Runs a .onnx file written by :func:`export.to_onnx.export_onnx` (or any with the same I/O)."""

    runtime = "ort"
    artifact_format = "onnx"
    #: int8: a QDQ-quantized .onnx (export/onnx_int8.py) on the CPU execution provider
    precisions = ("fp32", "tf32", "fp16", "int8")
    precision_note = "the exported graph is float32"
    rank = 3
    auto_rank = {"cpu": 2, "cuda": 2}  # 720p CPU: 1.60x the per-patch eager (benchmarks/results)

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        device: str = "cpu",
        precision: str = "fp32",
        provider: str | None = None,
        threads: int | None = None,
        name: str | None = None,
    ) -> None:
        provider = provider or default_provider(device, precision)
        if provider not in PROVIDERS:
            raise DMPHNError(f"unknown ONNX Runtime provider {provider!r}; use one of {', '.join(PROVIDERS)}")
        if (provider == "cpu") != (device == "cpu"):
            raise DMPHNError(f"provider {provider!r} does not run on device {device!r}")
        super().__init__(device=device, precision=precision, name=name or f"ort[{provider}]-{device}-{precision}",
                         threads=threads)
        self.path = Path(path)
        self.provider = provider
        self.session = None
        #: throughput mode on the CPU: one more session per extra stream, each with its own threads
        self.sessions: list[Any] = []
        self.session_threads: int | None = None
        self.metadata: dict[str, Any] | None = None

    @classmethod
    def unavailable_reason(cls, device: str, precision: str, provider: str | None = None) -> str | None:
        reason = super().unavailable_reason(device, precision)
        if reason:
            return reason
        available = _available_providers()
        if not available:
            return "onnxruntime is not installed (pip install onnxruntime, or onnxruntime-gpu on CUDA hosts)"
        provider = provider or default_provider(device, precision)
        if device == "cpu" and precision not in ("fp32", "int8"):
            return f"ONNX Runtime on the CPU runs the float32 graph only (or an int8 QDQ one), not {precision}"
        if device != "cpu" and precision == "int8":
            return "int8 ONNX (QDQ) runs on the CPU execution provider here"
        if provider == "cuda" and precision == "fp16":
            return "fp16 through ONNX Runtime goes through the TensorRT execution provider (provider='tensorrt')"
        if provider == "tensorrt" and precision == "tf32":
            return "the TensorRT execution provider has no TF32 switch here; use provider 'cuda' for tf32"
        if PROVIDERS[provider] not in available:
            return (
                f"ONNX Runtime here has no {PROVIDERS[provider]} (available: {', '.join(available)}); "
                "install onnxruntime-gpu instead of onnxruntime"
            )
        return None

    # -- lifecycle -------------------------------------------------------------------
    def _activate(self) -> None:
        reason = self.unavailable_reason(self.device, self.precision, self.provider)
        if reason:
            raise RuntimeUnavailable(f"{self.name}: {reason}")
        if self.device == "cuda":
            require_cuda(f"runtime {self.runtime}")
        if not self.path.is_file():
            raise DMPHNError(f"ONNX model not found: {self.path}")
        streams = (self.streams or default_streams(self.threads)) if self.throughput and self.device == "cpu" else 1
        # parallel sessions split the cores between them: a stream's threads would otherwise fight
        threads = max(1, (self.threads or os.cpu_count() or 1) // streams) if streams > 1 else self.threads
        session = self.new_session(threads=threads)
        self.sessions = [session] + [self.new_session(threads=threads) for _ in range(streams - 1)]
        self.session_threads = threads
        wanted = PROVIDERS[self.provider]
        if wanted not in session.get_providers():
            # ORT falls back silently (e.g. TensorRT EP without TensorRT libraries); say so instead.
            raise RuntimeUnavailable(
                f"{self.name}: ONNX Runtime could not create {wanted} (session got {session.get_providers()})"
            )
        self._check_io(session)
        self.session = session
        self.metadata = read_metadata(self.path, "onnx")
        quantized = (self.metadata or {}).get("precision") == "int8"
        if quantized != (self.precision == "int8"):
            raise DMPHNError(
                f"{self.path} is {'an int8 (QDQ)' if quantized else 'a float'} ONNX; run it at precision "
                f"{'int8' if quantized else 'fp32'}, not {self.precision}"
            )
        shape = session.get_inputs()[0].shape
        self.input_shape = tuple(dim if isinstance(dim, int) else None for dim in shape)
        self.model_config = config_of(self.metadata)

    def new_session(self, model: str | bytes | None = None, profile_prefix: str | None = None,
                    threads: int | None = None):
        """An InferenceSession of ``model`` (default: this runner's file; bytes: a modified graph) with
        this runner's providers and ``threads`` (default: the runner's); ``profile_prefix`` turns ORT's
        profiler on."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        threads = threads or self.threads
        if threads:
            options.intra_op_num_threads = threads
        if profile_prefix is not None:
            options.enable_profiling = True
            options.profile_file_prefix = profile_prefix
        try:
            return ort.InferenceSession(str(self.path) if model is None else model, options,
                                        providers=self._providers())
        except Exception as exc:  # noqa: BLE001 - ORT raises its own pybind types (InvalidProtobuf, Fail…)
            first = exception_line(exc)
            raise DMPHNError(f"cannot load ONNX model {self.path}: {first}") from None

    def _profile(self, x: torch.Tensor) -> Profile:
        """One warm-up and one profiled call in a second session with ORT's profiler on (CPU provider)."""
        if self.device != "cpu":
            raise RuntimeUnavailable(f"{self.name}: the ONNX Runtime profile hook runs the CPU provider only")
        feed = {INPUT_NAME: x.detach().contiguous().numpy()}
        with tempfile.TemporaryDirectory(prefix="dmphn-ort-profile-") as folder:
            session = self.new_session(profile_prefix=str(Path(folder) / "ort"))
            session.run([OUTPUT_NAME], feed)  # warm-up (ORT's first run allocates and plans)
            wall_ms = timed(lambda: session.run([OUTPUT_NAME], feed))
            trace = read_onnxruntime_trace(session.end_profiling())
        # the trace holds both runs: keep the profiled one's node events
        return Profile("onnxruntime profiler", wall_ms, onnxruntime_rows(_last_run(trace)))

    def _mark_outputs(self, x: torch.Tensor, inputs_of: Collection[int]) -> MarkedOutputs:
        """A second session of the graph with every Conv/ConvTranspose output marked as a graph output."""
        import onnx

        if self.device != "cpu":
            raise RuntimeUnavailable(f"{self.name}: marking ONNX outputs runs the CPU provider only")
        data, outputs, inputs, names = mark_onnx(onnx.load(str(self.path)), inputs_of)
        wanted = list(dict.fromkeys([*outputs, *inputs.values()]))
        values = dict(zip(wanted, self.new_session(data).run(wanted, {INPUT_NAME: x.detach().contiguous().numpy()})))
        return MarkedOutputs([values[name] for name in outputs], {i: values[name] for i, name in inputs.items()}, names)

    def concurrency(self) -> dict[str, int | None]:
        streams = max(1, len(self.sessions))
        return {**super().concurrency(), "streams": streams, "requests": 2 * streams if streams > 1 else 1,
                "threads_per_stream": self.session_threads}

    def infer_stream(self, inputs):
        if len(self.sessions) < 2:
            yield from super().infer_stream(inputs)
            return

        def worker(session):
            def run(x: np.ndarray) -> np.ndarray:
                tensor = torch.from_numpy(x) if isinstance(x, np.ndarray) else x
                self._check_input(tensor)
                return session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(tensor.float().numpy())})[0]
            return run

        yield from run_in_order(inputs, [worker(s) for s in self.sessions], in_flight=2 * len(self.sessions))

    def _providers(self) -> list[Any]:
        if self.provider == "cpu":
            return ["CPUExecutionProvider"]
        cuda_options = {"device_id": torch.cuda.current_device(), "use_tf32": int(self.precision == "tf32")}
        cuda = ("CUDAExecutionProvider", cuda_options)
        if self.provider == "cuda":
            return [cuda]
        trt_options = {"device_id": torch.cuda.current_device(), "trt_fp16_enable": self.precision == "fp16"}
        return [("TensorrtExecutionProvider", trt_options), cuda]

    def _check_io(self, session) -> None:
        inputs = [node.name for node in session.get_inputs()]
        outputs = [node.name for node in session.get_outputs()]
        if inputs != [INPUT_NAME] or OUTPUT_NAME not in outputs:
            raise DMPHNError(
                f"{self.path} is not a DMPHN export: expected input {INPUT_NAME!r} and output {OUTPUT_NAME!r}, "
                f"got inputs {inputs} and outputs {outputs}"
            )

    def _deactivate(self) -> None:
        self.session = None
        self.sessions = []

    def _check_input(self, x: torch.Tensor) -> None:
        super()._check_input(x)
        if self.model_config is not None:  # dynamic H/W: say which sizes fit before ORT fails deep inside
            try:
                self.model_config.geometry.check_size(x.shape[2], x.shape[3])
            except ValueError as exc:
                raise DMPHNError(f"{self.name}: {exc}") from None

    # -- inference -------------------------------------------------------------------
    def _infer(self, x: torch.Tensor) -> torch.Tensor:
        assert self.session is not None
        if self.device == "cpu":
            # numpy view of a CPU tensor: no copy; ORT does not write to its inputs
            out = self.session.run([OUTPUT_NAME], {INPUT_NAME: x.detach().contiguous().numpy()})[0]
            return torch.from_numpy(out)
        return self._infer_cuda(x.detach().contiguous())

    def _infer_cuda(self, x: torch.Tensor) -> torch.Tensor:
        device_id = x.device.index or 0
        output = torch.empty_like(x)  # DMPHN maps (B, 3, H, W) to the same shape
        binding = self.session.io_binding()
        binding.bind_input(INPUT_NAME, "cuda", device_id, np.float32, tuple(x.shape), x.data_ptr())
        binding.bind_output(OUTPUT_NAME, "cuda", device_id, np.float32, tuple(output.shape), output.data_ptr())
        # ORT computes on its own stream: wait for torch's queued work (the input copy) first.
        # run_with_iobinding returns after ORT's stream is done, so the output is ready.
        torch.cuda.current_stream().synchronize()
        self.session.run_with_iobinding(binding)
        return output

    def describe(self) -> dict[str, Any]:
        import onnxruntime as ort

        return {**super().describe(), "onnxruntime": ort.__version__, "provider": PROVIDERS[self.provider],
                "threads": self.threads, "sessions": len(self.sessions)}


def _last_run(trace: list[dict]) -> list[dict]:
    """The events of the last ``model_run`` in an ORT trace (node events inside its time span)."""
    runs = [event for event in trace if event.get("name") == "model_run"]
    if not runs:
        return trace
    start = float(runs[-1].get("ts", 0))
    end = start + float(runs[-1].get("dur", 0))
    return [event for event in trace if start <= float(event.get("ts", -1)) <= end]
