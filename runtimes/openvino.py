"""OpenVINO runner: the CPU (x86 and ARM) and edge runtime, at fp32, bf16, fp16 and int8.

Runs an OpenVINO IR (``model.xml`` + ``model.bin``) written by
:func:`export.to_openvino.export_openvino`. Precision works two ways:

* fp32 / bf16 / fp16: one float32 IR, compiled with OpenVINO's ``INFERENCE_PRECISION_HINT``
  (``f32``, ``bf16``, ``f16``). OpenVINO only computes in bf16/fp16 where the CPU has the
  instructions (AVX512-BF16 / AMX for bf16, AVX512-FP16 / AMX-FP16 / ARM fp16 for fp16) and
  otherwise silently computes in f32; this runner reports that as *unavailable* instead, so
  a "bf16" row is never an fp32 measurement under another name.
* int8: an IR quantized by NNCF (FakeQuantize nodes). The hint decides what the layers NNCF left
  float (residual adds and level joins, transposed and image-space convolutions) compute in:
  ``int8_float_hint="auto"`` (the default) picks ``bf16`` where the CPU plugin has BF16 (AMX /
  AVX512-BF16), ``f32`` elsewhere. On the AMX Xeon (2026-12-06, authors' DMPHN-1-2-4-8, 352x640,
  2 threads; docs/explain.md) bf16 float parts made int8 1.6x faster (median 468 vs 744 ms) for
  0.2 dB (41.06-41.56 vs 41.32-41.75 dB vs fp32 on the authors' four frames, all still >= 40 dB):
  with f32 float parts those layers took 46% of the int8 call. ``"f32"`` keeps the old behaviour
  (the same numbers on every CPU).

Metadata (model config, export shape, precision) comes from the IR's ``rt_info`` (see
:mod:`dmphn_core.artifact`). Input and output stay numpy float32 (B, 3, H, W).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Collection
import re
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from dmphn_core.artifact import INPUT_NAME, OUTPUT_NAME, companion_paths, config_of, read_metadata
from dmphn_core.errors import DMPHNError, RuntimeUnavailable

from .base import Runner
from .layers import MarkedOutputs, mark_openvino
from .profiling import Profile, openvino_rows, timed

#: OpenVINO's name of each project precision in INFERENCE_PRECISION_HINT (int8: see OpenVINORunner.hint).
INFERENCE_PRECISION = {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8": "f32"}
#: what an int8 IR's float layers compute in: "auto" (bf16 where the CPU has it, see the module
#: docstring), or f32 / bf16 as asked
INT8_FLOAT_HINTS = ("auto", "f32", "bf16")
#: CPU plugin capability (``OPTIMIZATION_CAPABILITIES``) each precision needs to really run.
REQUIRED_CAPABILITY = {"bf16": "BF16", "fp16": "FP16", "int8": "INT8"}
#: Performance hints OpenVINO knows; LATENCY (one request, all cores on it) suits single-image deblurring.
PERFORMANCE_HINTS = ("LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT")


@functools.lru_cache(maxsize=1)
def _core():
    import openvino as ov

    return ov.Core()


@functools.lru_cache(maxsize=1)
def cpu_capabilities() -> tuple[str, ...]:
    """OpenVINO CPU plugin's ``OPTIMIZATION_CAPABILITIES`` (e.g. FP32, INT8, BF16, FP16)."""
    return tuple(_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def openvino_version() -> str | None:
    try:
        import openvino as ov
    except ImportError:
        return None
    return ov.__version__


def is_quantized(model) -> bool:
    """True when an ov.Model holds NNCF's FakeQuantize nodes (an int8 IR)."""
    return any(op.get_type_name() == "FakeQuantize" for op in model.get_ops())


class OpenVINORunner(Runner):
    """Runs an OpenVINO IR on the CPU. ``threads``: INFERENCE_NUM_THREADS (None: OpenVINO's choice)."""

    runtime = "ov"
    artifact_format = "openvino"
    devices: ClassVar[tuple[str, ...]] = ("cpu",)
    precisions: ClassVar[tuple[str, ...]] = ("fp32", "bf16", "fp16", "int8")
    precision_note = "int8 needs a quantized IR; bf16/fp16 only where the CPU has them"
    rank = 7
    # 352x640, 2-core AMD EPYC: 2.51x the per-patch eager vs ONNX Runtime's 2.25x (cpu-openvino-2026-11-25)
    auto_rank = {"cpu": 1}

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        device: str = "cpu",
        precision: str = "fp32",
        threads: int | None = None,
        performance_hint: str = "LATENCY",
        weights: str | os.PathLike | None = None,
        name: str | None = None,
        int8_float_hint: str = "auto",
    ) -> None:
        if performance_hint not in PERFORMANCE_HINTS:
            raise DMPHNError(f"unknown OpenVINO performance hint {performance_hint!r}; use one of {PERFORMANCE_HINTS}")
        if threads is not None and threads < 1:
            raise DMPHNError(f"threads must be at least 1, got {threads}")
        super().__init__(device=device, precision=precision, name=name)
        self.path = Path(path)
        #: the IR's .bin; beside the .xml unless given (an export verifies a pair of temporary files)
        self.weights = Path(weights) if weights is not None else companion_paths(self.path, "openvino")[0]
        self.threads = threads
        self.performance_hint = performance_hint
        if int8_float_hint not in INT8_FLOAT_HINTS:
            raise DMPHNError(f"unknown int8_float_hint {int8_float_hint!r}; use one of {', '.join(INT8_FLOAT_HINTS)}")
        #: INFERENCE_PRECISION_HINT of an int8 IR: what its float (unquantized) layers compute in
        self.int8_float_hint = int8_float_hint
        self.metadata: dict[str, Any] | None = None
        self.compiled = None
        self.model = None
        self.request = None
        #: throughput mode: OpenVINO's asynchronous requests, as many as it says it needs
        self.infer_queue = None
        #: what OpenVINO reports it computes in, after compiling (e.g. "f32", "bf16")
        self.executed_precision: str | None = None

    @classmethod
    def unavailable_reason(cls, device: str, precision: str) -> str | None:
        if device not in cls.devices:
            return f"the OpenVINO runner runs on the CPU only (not {device})"
        if precision not in cls.precisions:
            return f"OpenVINO runner has no {precision} mode (use one of {', '.join(cls.precisions)})"
        reason = super().unavailable_reason(device, precision)
        if reason:
            return reason
        if openvino_version() is None:
            return "openvino is not installed (pip install openvino)"
        needed = REQUIRED_CAPABILITY.get(precision)
        if needed and needed not in cpu_capabilities():
            return (
                f"this CPU has no {precision} support in OpenVINO (its capabilities: {', '.join(cpu_capabilities())}); "
                f"OpenVINO would quietly compute in fp32"
            )
        return None

    # -- lifecycle -------------------------------------------------------------------
    def _activate(self) -> None:
        self._require_available()
        if self.path.suffix.lower() != ".xml":
            raise DMPHNError(f"an OpenVINO IR is a .xml file (with its .bin beside it), got {self.path}")
        if not self.path.is_file():
            raise DMPHNError(f"OpenVINO model not found: {self.path}")
        if not self.weights.is_file():
            raise DMPHNError(f"OpenVINO weights not found: {self.weights} (an IR is a .xml and its .bin)")
        self.metadata = read_metadata(self.path, "openvino")
        core = _core()
        try:
            model = core.read_model(str(self.path), str(self.weights))
        except Exception as exc:  # noqa: BLE001 - OpenVINO raises plain RuntimeError with long text
            raise DMPHNError(f"cannot read OpenVINO IR {self.path}: {openvino_reason(exc)}") from None
        self._check_io(model)
        quantized = is_quantized(model)
        if quantized != (self.precision == "int8"):
            raise DMPHNError(
                f"{self.path} is {'an int8 (quantized)' if quantized else 'a float'} IR; run it at precision "
                f"{'int8' if quantized else 'fp32, bf16 or fp16'}, not {self.precision}"
            )
        try:
            compiled = core.compile_model(model, "CPU", self.compile_config())
        except Exception as exc:  # noqa: BLE001 - e.g. weights that do not fit the graph
            raise DMPHNError(f"cannot compile OpenVINO IR {self.path}: {openvino_reason(exc)}") from None
        executed = str(compiled.get_property("INFERENCE_PRECISION_HINT"))
        self.executed_precision = _type_name(executed)
        if self.executed_precision != self.hint:
            raise RuntimeUnavailable(
                f"{self.name}: OpenVINO compiled the model in {self.executed_precision}, not "
                f"{self.hint} (no support on this CPU)"
            )
        self.compiled = compiled
        self.model = model
        self.request = compiled.create_infer_request()
        if self.throughput:
            import openvino as ov

            self.infer_queue = ov.AsyncInferQueue(compiled, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        shape = model.input(0).get_partial_shape()
        self.input_shape = tuple(dim.get_length() if dim.is_static else None for dim in shape)
        self.model_config = config_of(self.metadata)

    @property
    def hint(self) -> str:
        """The INFERENCE_PRECISION_HINT this runner compiles with."""
        if self.precision != "int8":
            return INFERENCE_PRECISION[self.precision]
        if self.int8_float_hint == "auto":
            return "bf16" if "BF16" in cpu_capabilities() else "f32"
        return self.int8_float_hint

    def compile_config(self, **extra: Any) -> dict[str, Any]:
        """The CPU plugin settings this runner compiles with (``extra``: e.g. ``PERF_COUNT``)."""
        config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": self.hint,
            "PERFORMANCE_HINT": "THROUGHPUT" if self.throughput else self.performance_hint,
            **extra,
        }
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = self.threads
        if self.throughput and self.streams:
            config["NUM_STREAMS"] = self.streams
        return config

    def _profile(self, x: torch.Tensor) -> Profile:
        """One warm-up and one call of a copy compiled with performance counters on (``PERF_COUNT``):
        per executed layer, the kernel (``exec_type``) and the precision it ran in."""
        compiled = _core().compile_model(self.model, "CPU", self.compile_config(PERF_COUNT=True))
        request = compiled.create_infer_request()
        feed = {INPUT_NAME: np.ascontiguousarray(x.detach().numpy())}
        request.infer(feed)  # warm-up: the counters below are the second call's
        wall_ms = timed(lambda: request.infer(feed))
        return Profile("openvino performance counters", wall_ms, openvino_rows(request.profiling_info))

    def _mark_outputs(self, x: torch.Tensor, inputs_of: Collection[int]) -> MarkedOutputs:
        """A copy of the model with every convolution's output (before its bias) added
        (``Model.add_outputs``), compiled with this runner's settings."""
        model = self.model.clone()
        outputs, inputs, names = mark_openvino(model, inputs_of)
        request = _core().compile_model(model, "CPU", self.compile_config()).create_infer_request()
        request.infer({INPUT_NAME: np.ascontiguousarray(x.detach().numpy())})

        def value(index: int) -> np.ndarray:
            return np.array(request.get_output_tensor(index).data, dtype=np.float32)

        return MarkedOutputs([value(i) for i in outputs], {k: value(i) for k, i in inputs.items()}, names,
                             without_bias=True)

    def _check_io(self, model) -> None:
        inputs = [name for port in model.inputs for name in port.get_names()]
        outputs = [name for port in model.outputs for name in port.get_names()]
        if len(model.inputs) != 1 or INPUT_NAME not in inputs or OUTPUT_NAME not in outputs:
            raise DMPHNError(
                f"{self.path} is not a DMPHN export: expected input {INPUT_NAME!r} and output {OUTPUT_NAME!r}, "
                f"got inputs {inputs} and outputs {outputs}"
            )

    def _deactivate(self) -> None:
        if self.infer_queue is not None:
            self.infer_queue.wait_all()
        self.infer_queue = None
        self.request = None
        self.compiled = None
        self.model = None

    def concurrency(self) -> dict[str, int | None]:
        if self.infer_queue is None:
            return super().concurrency()
        return {**super().concurrency(), "streams": int(self.compiled.get_property("NUM_STREAMS")),
                "requests": len(self.infer_queue)}

    def infer_stream(self, inputs):
        """Throughput mode: every input goes to an idle request of the AsyncInferQueue (start_async
        waits for one); finished outputs are yielded in input order."""
        if self.infer_queue is None:
            yield from super().infer_stream(inputs)
            return
        output = self.compiled.output(OUTPUT_NAME)
        done: dict[int, np.ndarray] = {}

        def finished(request, index: int) -> None:  # on OpenVINO's thread; the request is reused next
            done[index] = np.array(request.get_tensor(output).data, dtype=np.float32, copy=True)

        self.infer_queue.set_callback(finished)
        sent = emitted = 0
        try:
            for x in inputs:
                tensor = torch.from_numpy(x) if isinstance(x, np.ndarray) else x
                self._check_input(tensor)
                # share_inputs off: the request copies the input, so the caller may reuse its buffer
                self.infer_queue.start_async({INPUT_NAME: np.ascontiguousarray(tensor.float().numpy())}, userdata=sent)
                sent += 1
                while emitted in done:
                    yield done.pop(emitted)
                    emitted += 1
            self.infer_queue.wait_all()
            while emitted < sent:
                yield done.pop(emitted)
                emitted += 1
        finally:
            self.infer_queue.wait_all()  # no request left writing after the caller stops reading

    # -- inference -------------------------------------------------------------------
    def _infer(self, x: torch.Tensor) -> torch.Tensor:
        assert self.request is not None
        # share_inputs: OpenVINO reads the numpy buffer in place (no copy); it never writes to it
        results = self.request.infer({INPUT_NAME: np.ascontiguousarray(x.detach().numpy())}, share_inputs=True)
        out = results[self.compiled.output(OUTPUT_NAME)]
        return torch.from_numpy(np.array(out, dtype=np.float32, copy=True))

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(), "openvino": openvino_version(), "threads": self.threads,
            "performance_hint": "THROUGHPUT" if self.throughput else self.performance_hint,
            "executed_precision": self.executed_precision,
            **({"int8_float_hint": self.hint} if self.precision == "int8" else {}),
        }


# lines ending in a source location ("Exception from src/…/core.cpp:84:", "Check '…' failed at …cpp:900:")
# say where OpenVINO gave up, not why
_WHERE_LINE = re.compile(r"\.(cpp|hpp|h|cc):\d+:?$")


def openvino_reason(exc: BaseException) -> str:
    """The line of an OpenVINO error that says why (its message starts with source locations)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    reasons = [line for line in lines if not _WHERE_LINE.search(line)]
    return (reasons or lines or [type(exc).__name__])[0]


def _type_name(text: str) -> str:
    """OpenVINO prints an element type as "<Type: 'float32'>" or "f32"; return the short name."""
    long_names = {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}
    for long_name, short in long_names.items():
        if long_name in text:
            return short
    return text.strip()
