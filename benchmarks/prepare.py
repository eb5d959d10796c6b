"""Turn (runtime, device, precision, shape) into a ready-to-activate runner.

Artifacts (ONNX, TorchScript, .pt2, engines) are exported from one checkpoint into a work
folder, once per shape, and the time each build took is kept for the report: compile cost
is reported apart from latency.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dmphn_core.checkpoint import DEMO_CHECKPOINT, load_checkpoint
from dmphn_core.errors import DMPHNError, RuntimeUnavailable
from dmphn_core.model import DMPHN
from runtimes import RUNTIMES, runner_class
from runtimes.base import PRECISIONS, Runner


def parse_list(text: str, allowed: tuple[str, ...] | list[str], what: str, all_means: tuple[str, ...] | None = None) -> list[str]:
    """``"a,b"`` -> ``["a", "b"]`` checked against ``allowed``; ``"all"`` -> ``all_means``."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if items == ["all"] and all_means is not None:
        return list(all_means)
    unknown = [item for item in items if item not in allowed]
    if unknown or not items:
        raise DMPHNError(f"unknown {what} {', '.join(unknown) or repr(text)}; use one of {', '.join(allowed)}")
    return items


def parse_runtimes(text: str) -> list[str]:
    return parse_list(text, [*RUNTIMES, "all"], "runtime", all_means=tuple(RUNTIMES))


def parse_precisions(text: str) -> list[str]:
    return parse_list(text, PRECISIONS, "precision")


def parse_shape(text: str) -> tuple[int, int]:
    """``"720x1280"`` -> ``(720, 1280)``."""
    try:
        height, width = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise DMPHNError(f"shape must look like HEIGHTxWIDTH (e.g. 720x1280), got {text!r}") from None
    if height <= 0 or width <= 0:
        raise DMPHNError(f"shape must be positive, got {text!r}")
    return height, width


@dataclass(frozen=True)
class RunnerSpec:
    """One column of a report: which runtime, on what, at which precision, with which options."""

    runtime: str
    device: str
    precision: str
    compile_mode: str = "default"
    cuda_graph: bool = False

    @property
    def label(self) -> str:
        label = self.runtime
        if self.runtime == "compile" and self.compile_mode != "default":
            label += f"[{self.compile_mode}]"
        if self.cuda_graph and self.runtime in ("trt", "compile"):
            label += "+graph"
        return f"{label}-{self.device}-{self.precision}"

    def unavailable_reason(self) -> str | None:
        try:
            cls = runner_class(self.runtime)
        except ImportError as exc:
            return f"runner module for {self.runtime} cannot be imported ({exc})"
        return cls.unavailable_reason(self.device, self.precision)


@dataclass
class ArtifactCache:
    """Builds each artifact once per (kind, batch, shape, device, precision) in ``workdir``."""

    checkpoint: Path | None
    workdir: Path
    build_seconds: dict[str, float] = field(default_factory=dict)
    _model: DMPHN | None = None

    @property
    def model(self) -> DMPHN:
        if self._model is None:
            self._model = load_checkpoint(self.checkpoint or DEMO_CHECKPOINT).build_model()
        return self._model

    def _path(self, kind: str, batch: int, height: int, width: int, tag: str, suffix: str) -> Path:
        return self.workdir / f"{kind}_b{batch}_{height}x{width}{tag}{suffix}"

    def _build(self, path: Path, builder) -> Path:
        if not path.exists():
            self.workdir.mkdir(parents=True, exist_ok=True)
            begin = time.perf_counter()
            builder(path)
            self.build_seconds[path.name] = time.perf_counter() - begin
        return path

    def onnx(self, batch: int, height: int, width: int) -> Path:
        from export.to_onnx import export_onnx

        path = self._path("model", batch, height, width, "", ".onnx")
        return self._build(path, lambda p: export_onnx(self.model, p, batch=batch, height=height, width=width))

    def torchscript(self, batch: int, height: int, width: int, device: str) -> Path:
        from export.to_torchscript import export_torchscript

        path = self._path("model", batch, height, width, f"_{device}", ".ts")
        return self._build(
            path, lambda p: export_torchscript(self.model, p, batch=batch, height=height, width=width, device=device)
        )

    def aoti(self, batch: int, height: int, width: int, device: str, precision: str) -> Path:
        from export.to_aoti import export_aoti

        path = self._path("model", batch, height, width, f"_{device}_{precision}", ".pt2")
        return self._build(
            path,
            lambda p: export_aoti(
                self.model, p, batch=batch, height=height, width=width, device=device, precision=precision
            ),
        )

    def engine(self, batch: int, height: int, width: int, precision: str) -> Path:
        from export.to_tensorrt import build_engine

        onnx_path = self.onnx(batch, height, width)
        path = self._path("model", batch, height, width, f"_{precision}", ".engine")
        return self._build(
            path,
            lambda p: build_engine(
                self.model, p, batch=batch, height=height, width=width, precision=precision, onnx_path=onnx_path
            ),
        )

    def onnx_int8(self, batch: int, height: int, width: int) -> Path:
        """QDQ int8 of the static ONNX (ONNX Runtime's static quantization)."""
        from export.onnx_int8 import quantize_onnx_int8

        fp32 = self.onnx(batch, height, width)
        path = self._path("model", batch, height, width, "_int8", ".onnx")
        return self._build(path, lambda p: quantize_onnx_int8(fp32, p))

    def openvino(self, batch: int, height: int, width: int, precision: str) -> Path:
        """One float IR serves fp32, bf16 and fp16 (a compile-time hint); int8 has its own (NNCF)."""
        from export.to_openvino import export_openvino

        kind = "int8" if precision == "int8" else "float"
        path = self._path("model", batch, height, width, f"_ov_{kind}", ".xml")
        return self._build(
            path,
            lambda p: export_openvino(
                self.model, p, batch=batch, height=height, width=width, precision="int8" if kind == "int8" else "fp32"
            ),
        )

    def seconds_for(self, path: Path) -> float | None:
        return self.build_seconds.get(path.name)


def make_runner(
    spec: RunnerSpec, cache: ArtifactCache, batch: int, height: int, width: int, threads: int | None = None
) -> tuple[Runner, float | None]:
    """Build the artifact ``spec`` needs (if any) and return ``(runner, build_seconds)``.

    Raises RuntimeUnavailable with the reason when the runtime cannot run here.
    """
    reason = spec.unavailable_reason()
    if reason:
        raise RuntimeUnavailable(reason)
    cls = runner_class(spec.runtime)
    common: dict[str, Any] = {"device": spec.device, "precision": spec.precision, "name": spec.label}
    artifact: Path | None = None
    if spec.runtime in ("torch", "torch-ref"):
        runner = cls(cache.model, **common)
    elif spec.runtime == "compile":
        runner = cls(cache.model, mode=spec.compile_mode, cuda_graph=spec.cuda_graph, **common)
    elif spec.runtime == "torchscript":
        artifact = cache.torchscript(batch, height, width, spec.device)
        runner = cls(artifact, **common)
    elif spec.runtime == "ort":
        artifact = cache.onnx_int8(batch, height, width) if spec.precision == "int8" else cache.onnx(batch, height, width)
        runner = cls(artifact, threads=threads, **common)
    elif spec.runtime == "aoti":
        artifact = cache.aoti(batch, height, width, spec.device, spec.precision)
        runner = cls(artifact, **common)
    elif spec.runtime == "ov":
        artifact = cache.openvino(batch, height, width, spec.precision)
        runner = cls(artifact, threads=threads, **common)
    elif spec.runtime == "trt":
        artifact = cache.engine(batch, height, width, spec.precision)
        runner = cls(artifact, precision=spec.precision, cuda_graph=spec.cuda_graph, name=spec.label)
    else:  # pragma: no cover - RUNTIMES and this switch are kept in step by test_prepare
        raise DMPHNError(f"no preparation rule for runtime {spec.runtime!r}")
    return runner, cache.seconds_for(artifact) if artifact else None


def default_workdir() -> Path:
    return Path(os.environ.get("DMPHN_WORKDIR", ".dmphn_artifacts"))
