"""Latency of every requested runtime on the same inputs, one process, one table."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch

from dmphn_core.errors import DMPHNError, RuntimeUnavailable
from dmphn_core.flops import count_flops

from .prepare import ArtifactCache, RunnerSpec, make_runner
from .timing import PeakMemory, measure_peak_flops, time_runner


@dataclass(frozen=True)
class BenchSettings:
    shapes: list[tuple[int, int]]
    batches: list[int]
    warmup: int = 3
    iters: int = 10
    threads: int | None = None
    seed: int = 0
    #: FLOP/s ceiling per precision; measured on the device when absent.
    peak_flops: dict[str, float] | None = None
    #: Real frames to time on, (N, 3, H, W) float32 (e.g. the authors' GoPro frames); random when None.
    frames: torch.Tensor | None = None
    frames_label: str = ""

    @property
    def input_label(self) -> str:
        return self.frames_label if self.frames is not None else f"random(seed={self.seed})"


def _inputs(batch: int, height: int, width: int, device: str, settings: BenchSettings) -> torch.Tensor:
    if settings.frames is not None:
        if tuple(settings.frames.shape[-2:]) != (height, width):
            raise DMPHNError(f"frames are {tuple(settings.frames.shape[-2:])}, not the benchmarked {height}x{width}")
        count = settings.frames.shape[0]
        return settings.frames[[i % count for i in range(batch)]].to(device)  # the first `batch` frames, repeated
    generator = torch.Generator().manual_seed(settings.seed)
    return torch.rand(batch, 3, height, width, generator=generator).to(device)


def run_benchmark(
    specs: Iterable[RunnerSpec],
    cache: ArtifactCache,
    settings: BenchSettings,
    machine: dict[str, Any],
    progress: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """One row per (spec, batch, shape): latency stats, throughput, memory, roofline ratio.

    A runtime that cannot run here gives a row with ``status="skipped"`` and the reason;
    one that fails gives ``status="error"``; the others still run.
    """
    specs = list(specs)
    config = cache.model.config
    peaks: dict[tuple[str, str], float] = {}
    rows: list[dict[str, Any]] = []
    for batch in settings.batches:
        for height, width in settings.shapes:
            config.geometry.check_size(height, width)
            flops = count_flops(config, batch, height, width)
            for spec in specs:
                row: dict[str, Any] = {
                    "runtime": spec.runtime, "runner": spec.label, "device": spec.device,
                    "precision": spec.precision, "batch": batch, "height": height, "width": width,
                    "threads": settings.threads, "warmup": settings.warmup, "iters": settings.iters,
                    "model": config.name, "levels": config.geometry.num_levels, "weights": cache.weights,
                    "input": settings.input_label, "gflop": flops / 1e9, "machine": machine,
                }
                reason = spec.unavailable_reason()
                if reason:
                    rows.append({**row, "status": "skipped", "reason": reason})
                    progress(f"skip  {spec.label}: {reason}")
                    continue
                progress(f"run   {spec.label} batch {batch} {height}x{width}")
                try:
                    row.update(_measure(spec, cache, settings, batch, height, width))
                except RuntimeUnavailable as exc:  # found out only when loading (e.g. no such CPU support)
                    rows.append({**row, "status": "skipped", "reason": str(exc)})
                    progress(f"skip  {spec.label}: {exc}")
                    continue
                except Exception as exc:  # noqa: BLE001 - one broken runtime must not hide the others
                    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                    reason = message if isinstance(exc, DMPHNError) else f"{type(exc).__name__}: {message}"
                    rows.append({**row, "status": "error", "reason": reason})
                    progress(f"error {spec.label}: {reason}")
                    continue
                row.update(
                    status="ok",
                    images_per_s=batch / (row["p50_ms"] / 1e3),
                    megapixels_per_s=batch * height * width / 1e6 / (row["p50_ms"] / 1e3),
                )
                key = (spec.device, spec.precision)
                if spec.precision != "int8":  # no int8 ceiling is measured: leave its floor blank, not borrowed
                    if key not in peaks:
                        peaks[key] = (settings.peak_flops or {}).get(spec.precision) or measure_peak_flops(*key)
                    floor_ms = flops / peaks[key] * 1e3
                    row.update(peak_tflops=peaks[key] / 1e12, floor_ms=floor_ms, floor_ratio=row["p50_ms"] / floor_ms)
                rows.append(row)
                floor_text = f", {row['floor_ratio']:.1f}x the compute floor" if "floor_ratio" in row else ""
                progress(f"      p50 {row['p50_ms']:.2f} ms{floor_text}")
    return rows


def _measure(
    spec: RunnerSpec, cache: ArtifactCache, settings: BenchSettings, batch: int, height: int, width: int
) -> dict[str, Any]:
    runner, build_s = make_runner(spec, cache, batch, height, width, settings.threads)
    x = _inputs(batch, height, width, spec.device, settings)
    with PeakMemory(spec.device) as memory:
        begin = time.perf_counter()
        runner.activate()
        activate_s = time.perf_counter() - begin
        try:
            stats = time_runner(runner, x, settings.warmup, settings.iters)
        finally:
            runner.deactivate()
    result = {**stats.__dict__, "build_s": build_s, "activate_s": activate_s, "peak_mem_mb": memory.peak_mb}
    compile_s = getattr(runner, "compile_seconds", None)
    if compile_s is not None:
        result["compile_s"] = compile_s
    return result
