"""Latency of every requested runtime on the same inputs, one process, one table.

Rows are timed round-robin: every row once per round, for several rounds, so load that comes
and goes hits every row alike instead of crowning whichever row ran in a quiet moment (issue 26).
A row's ``p50_ms`` is the min of its round medians (:func:`benchmarks.timing.summarize_rounds`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from dmphn_core.errors import DMPHNError, RuntimeUnavailable
from dmphn_core.flops import count_flops
from runtimes.base import Runner

from .prepare import ArtifactCache, RunnerSpec, make_runner
from .report import add_speedups
from .peak import Ceiling, ceiling_for, floor_verdict
from .timing import PeakMemory, summarize_rounds, time_calls, warm_up

#: Called with each row as soon as it is known (see :func:`run_benchmark`).
RowCallback = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class BenchSettings:
    shapes: list[tuple[int, int]]
    batches: list[int]
    warmup: int = 3
    #: timed calls per row per round
    iters: int = 10
    #: round-robin rounds: every row is timed once per round
    rounds: int = 3
    #: keep every runner activated from its first round to the end (no re-activation or re-warm-up
    #: between rounds); False releases each after its turn (less memory with many large rows,
    #: at the cost of activating and warming it up again every round)
    keep_active: bool = True
    threads: int | None = None
    seed: int = 0
    #: FLOP/s ceiling per precision; the instruction-set peak (benchmarks.peak) when absent.
    peak_flops: dict[str, float] | None = None
    #: Real frames to time on, (N, 3, H, W) float32 (e.g. the authors' GoPro frames); random when None.
    frames: torch.Tensor | None = None
    frames_label: str = ""

    @property
    def input_label(self) -> str:
        return self.frames_label if self.frames is not None else f"random(seed={self.seed})"

    @property
    def thread_count(self) -> int:
        return self.threads or torch.get_num_threads()


@dataclass
class _Slot:
    """One timed row: its spec and inputs, its runner (made in round 1) and each round's samples."""

    spec: RunnerSpec
    row: dict[str, Any]
    flops: int
    runner: Runner | None = None
    rounds_ms: list[list[float]] = field(default_factory=list)

    @property
    def live(self) -> bool:
        return "status" not in self.row  # not yet skipped or failed


def bench_inputs(batch: int, height: int, width: int, device: str, settings: BenchSettings) -> torch.Tensor:
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
    on_row: RowCallback | None = None,
) -> list[dict[str, Any]]:
    """One row per (spec, batch, shape): latency stats, throughput, memory, roofline ratio.

    A runtime that cannot run here gives a row with ``status="skipped"`` and the reason;
    one that fails gives ``status="error"``; the others still run. ``on_row`` receives each
    row as soon as it is known: skipped and failed rows at once, a ``status="partial"`` copy
    of every timed row after each round (its figures so far), then the final ``"ok"`` rows.
    """
    emit = on_row or (lambda row: None)
    slots = _plan(list(specs), cache, settings, machine)
    for slot in slots:
        if not slot.live:
            progress(f"skip  {slot.spec.label}: {slot.row['reason']}")
            emit(slot.row)
    loads: list[list[float]] = []
    try:
        for number in range(1, settings.rounds + 1):
            load_start = os.getloadavg()[0]
            for slot in [s for s in slots if s.live]:
                progress(f"round {number}/{settings.rounds} {slot.spec.label} batch {slot.row['batch']} "
                         f"{slot.row['height']}x{slot.row['width']}")
                _time_round(slot, cache, settings, progress, emit)
            loads.append([load_start, os.getloadavg()[0]])
            for slot in [s for s in slots if s.live]:
                emit({**_timed(slot, loads, settings), "status": "partial", "rounds_planned": settings.rounds})
    finally:
        for slot in slots:
            if slot.runner is not None:
                slot.runner.deactivate()
    _finish(slots, loads, settings, progress)
    rows = [slot.row for slot in slots]
    add_speedups(rows)
    for slot in slots:
        if slot.row["status"] == "ok":
            emit(slot.row)
    return rows


def prepare_artifacts(specs: Iterable[RunnerSpec], cache: ArtifactCache, settings: BenchSettings,
                      progress: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Build (export and verify) every artifact a run of ``specs`` would time, and time nothing.

    Run it under a shared CPU lock before the timed run, so the timed run only times; returns
    one ``{"runner", "height", "width", "batch", "status", "build_s" | "reason"}`` per pair.
    """
    results = []
    for batch in settings.batches:
        for height, width in settings.shapes:
            cache.model.config.geometry.check_size(height, width)
            for spec in specs:
                result: dict[str, Any] = {"runner": spec.label, "batch": batch, "height": height, "width": width}
                try:
                    _, build_s = make_runner(spec, cache, batch, height, width, settings.threads)
                    result.update(status="ok", build_s=build_s)
                    progress(f"ready {spec.label} batch {batch} {height}x{width}"
                             + (f" (built in {build_s:.1f} s)" if build_s is not None else ""))
                except RuntimeUnavailable as exc:
                    result.update(status="skipped", reason=str(exc))
                    progress(f"skip  {spec.label}: {exc}")
                results.append(result)
    return results


def _plan(specs: list[RunnerSpec], cache: ArtifactCache, settings: BenchSettings, machine: dict[str, Any]) -> list[_Slot]:
    """Every (batch, shape, spec) as a slot; those that cannot run here are already skipped rows."""
    config = cache.model.config
    slots = []
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
                    row.update(status="skipped", reason=reason)
                slots.append(_Slot(spec, row, flops))
    return slots


def _time_round(slot: _Slot, cache: ArtifactCache, settings: BenchSettings, progress: Callable[[str], None],
                emit: RowCallback) -> None:
    """One round of ``slot``: its first round makes, activates and warms up the runner (peak memory
    measured over all of that and the timed calls); later rounds only time it."""
    spec, row = slot.spec, slot.row
    try:
        if slot.runner is None:
            slot.runner, build_s = make_runner(spec, cache, row["batch"], row["height"], row["width"], settings.threads)
            row["build_s"] = build_s
            with PeakMemory(spec.device) as memory:
                begin = time.perf_counter()
                slot.runner.activate()
                row["activate_s"] = time.perf_counter() - begin
                x = bench_inputs(row["batch"], row["height"], row["width"], spec.device, settings)
                warm_up(slot.runner, x, settings.warmup)
                samples = time_calls(slot.runner, x, settings.iters)
            row["peak_mem_mb"] = memory.peak_mb
            compile_s = getattr(slot.runner, "compile_seconds", None)
            if compile_s is not None:
                row["compile_s"] = compile_s
        else:
            x = bench_inputs(row["batch"], row["height"], row["width"], spec.device, settings)
            if not slot.runner.is_active:  # released after its last turn (keep_active=False)
                slot.runner.activate()
                warm_up(slot.runner, x, settings.warmup)
            samples = time_calls(slot.runner, x, settings.iters)
    except RuntimeUnavailable as exc:  # found out only when loading (e.g. no such CPU support)
        _drop(slot, "skipped", str(exc), progress, emit)
        return
    except Exception as exc:  # noqa: BLE001 - one broken runtime must not hide the others
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        _drop(slot, "error", message if isinstance(exc, DMPHNError) else f"{type(exc).__name__}: {message}",
              progress, emit)
        return
    slot.rounds_ms.append(samples)
    if not settings.keep_active:
        slot.runner.deactivate()
    median = sorted(samples)[len(samples) // 2]
    progress(f"      median {median:.2f} ms")


def _drop(slot: _Slot, status: str, reason: str, progress: Callable[[str], None], emit: RowCallback) -> None:
    """Mark ``slot`` skipped or failed, free its runner and report the row at once."""
    if slot.runner is not None:
        slot.runner.deactivate()
        slot.runner = None
    for key in ("build_s", "activate_s", "peak_mem_mb", "compile_s"):
        slot.row.pop(key, None)
    slot.row.update(status=status, reason=reason)
    progress(f"{'skip ' if status == 'skipped' else 'error'} {slot.spec.label}: {reason}")
    emit(slot.row)


def _timed(slot: _Slot, loads: list[list[float]], settings: BenchSettings) -> dict[str, Any]:
    """The row with its latency figures over the rounds so far and the load around each round."""
    row = {**slot.row, **summarize_rounds(slot.rounds_ms)}
    row["load_1min"] = [list(pair) for pair in loads]  # [start, end] of each round
    row["load_high"] = any(value > settings.thread_count for pair in loads for value in pair)
    return row


def _finish(slots: list[_Slot], loads: list[list[float]], settings: BenchSettings,
            progress: Callable[[str], None]) -> None:
    """Final figures of every timed row: latency over the rounds, throughput, compute floor."""
    ceilings: dict[tuple[str, str], Ceiling] = {}
    for slot in slots:
        if not slot.live:
            continue
        row = slot.row
        row.update(_timed(slot, loads, settings))
        row.update(
            status="ok",
            images_per_s=row["batch"] / (row["p50_ms"] / 1e3),
            megapixels_per_s=row["batch"] * row["height"] * row["width"] / 1e6 / (row["p50_ms"] / 1e3),
        )
        spec = slot.spec
        key = (spec.device, spec.precision)
        if key not in ceilings:
            ceilings[key] = ceiling_for(*key, settings.thread_count, (settings.peak_flops or {}).get(spec.precision))
        floor_ms = slot.flops / ceilings[key].flops_per_s * 1e3
        row.update(peak_tflops=ceilings[key].flops_per_s / 1e12, floor_basis=ceilings[key].basis, floor_ms=floor_ms,
                   floor_ratio=row["p50_ms"] / floor_ms)
        verdict = floor_verdict(row["floor_ratio"])
        if verdict:
            row["floor_note"] = verdict
        rounds_text = ", ".join(f"{m:.2f}" for m in row["round_p50_ms"])
        progress(f"{spec.label} {row['height']}x{row['width']}: p50 {row['p50_ms']:.2f} ms "
                 f"(round medians {rounds_text}; spread {row['round_spread']:.2f}), "
                 f"{row['floor_ratio']:.1f}x the compute floor ({ceilings[key].basis})"
                 + (f": {verdict}" if verdict else ""))
