"""The compute floor's ceiling: a device's peak arithmetic rate at one precision, with its basis.

The floor of a row is the model's direct-convolution FLOPs (2 per multiply-add, counted by
``dmphn_core.flops``) over the PEAK rate of the widest instruction set the CPU offers for that
precision, so no honest timing of a direct convolution can beat it. On a CPU::

    peak FLOP/s = cores used x clock (Hz) x FLOPs per cycle per core of that instruction set

* cores used: the threads the run uses, at most the CPUs the OS shows (an SMT sibling is counted
  as a core: generous, so the floor stays a floor);
* clock: the highest the OS reports (``cpufreq`` max, ``cpu MHz``, the model name's "@ x GHz");
  a turbo above it would let a row beat the floor by up to that factor, so the measured rate of a
  large matmul at the same precision is taken instead whenever it is higher;
* FLOPs per cycle: :data:`FLOPS_PER_CYCLE`, assuming two vector FMA units per core (true of
  Xeon Gold/Platinum; Zen 4 splits AVX-512 into 2x256 bits, so its peak is overstated 2x: generous).

A row faster than its floor is possible only with fewer multiplies than direct convolution
(Winograd, FFT); faster than the floor by more than :data:`KNOWN_ALGORITHMIC_SAVING` is not
explained by a known algorithm and is flagged (a timing or counting error, or a clock above
the one assumed). On CUDA the peak is the datasheet's dense tensor-core rate where the GPU is
known (:data:`GPU_PEAK_TFLOPS`), else the measured matmul rate (named as such: not a peak).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

#: Dense FLOPs per cycle per core (2 per multiply-add) of each instruction set, two units each:
#: AVX-512 FMA 2x16 fp32 lanes x 2; AVX2 FMA 2x8x2; AVX512-BF16 VDPBF16PS 2x16 lanes x 2 pairs x 2;
#: AVX512-FP16 2x32x2; AVX512-VNNI VPDPBUSD 2x16 lanes x 4 bytes x 2; AVX-VNNI (256-bit) half that;
#: AMX TMUL per core per cycle 1024 bf16 / fp16 and 2048 int8 operations (Intel's figures).
FLOPS_PER_CYCLE = {
    "amx_int8": 2048, "amx_bf16": 1024, "amx_fp16": 1024,
    "avx512_vnni": 256, "avx_vnni": 128, "avx512_fp16": 128, "avx512_bf16": 128,
    "avx512f": 64, "avx2": 32, "sse": 16,
}

#: Which instruction sets can compute each precision, widest first; fp32 is the fallback of all
#: (a CPU without bf16 instructions converts bf16 to fp32 and computes there).
CANDIDATES = {
    "int8": ("amx_int8", "avx512_vnni", "avx_vnni"),
    "bf16": ("amx_bf16", "avx512_bf16"),
    "fp16": ("amx_fp16", "avx512_fp16"),
    "fp32": (),
    "tf32": (),
}
FP32_CANDIDATES = ("avx512f", "avx2")

#: Winograd F(2x2, 3x3) needs 2.25x fewer multiplies than direct 3x3 convolution, the largest
#: saving of the algorithms CPU libraries use for this model's 3x3 layers (oneDNN, OpenVINO, MLAS).
KNOWN_ALGORITHMIC_SAVING = 2.25

#: Dense tensor-core (fp32: CUDA-core) peak TFLOP/s from NVIDIA's datasheets, SXM parts.
GPU_PEAK_TFLOPS = {
    "H200": {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4, "int8": 1978.9},
    "H100": {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4, "int8": 1978.9},
    "A100": {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0, "int8": 624.0},
}


@dataclass(frozen=True)
class Ceiling:
    flops_per_s: float
    basis: str


def cpu_peak(precision: str, features: dict[str, bool], threads: int, clock_ghz: float) -> Ceiling:
    """Peak FLOP/s of ``threads`` cores at ``clock_ghz`` with the widest instruction set for ``precision``."""
    have = [name for name in CANDIDATES.get(precision, ()) if features.get(name)]
    fp32 = [name for name in FP32_CANDIDATES if features.get(name)] or ["sse"]
    isa = (have or fp32)[0]
    cores = max(1, min(threads, os.cpu_count() or threads))
    flops = cores * clock_ghz * 1e9 * FLOPS_PER_CYCLE[isa]
    return Ceiling(flops, f"{isa} peak: {cores} core(s) x {clock_ghz:.2f} GHz x {FLOPS_PER_CYCLE[isa]} FLOP/cycle")


def gpu_peak(gpu_name: str, precision: str) -> Ceiling | None:
    for model, table in GPU_PEAK_TFLOPS.items():
        if model in gpu_name.upper() and precision in table:
            return Ceiling(table[precision] * 1e12, f"{model} datasheet dense {precision} peak")
    return None


def device_ceiling(device: str, precision: str, features: dict[str, bool], threads: int, clock_ghz: float | None,
                   measured: float | None, gpu_name: str = "") -> Ceiling:
    """The ceiling of a floor: the instruction-set (or datasheet) peak, or the measured matmul rate
    when that is higher (then the assumed clock was too low) or when no peak is known."""
    peak = None
    if device == "cpu" and clock_ghz:
        peak = cpu_peak(precision, features, threads, clock_ghz)
    elif device == "cuda":
        peak = gpu_peak(gpu_name, precision)
    if measured and (peak is None or measured > peak.flops_per_s):
        reason = "no known peak" if peak is None else f"above the {peak.basis.split(':')[0]}"
        return Ceiling(measured, f"measured {precision} matmul rate ({reason}): not a peak")
    if peak is None:
        raise ValueError(f"no peak known for {device} {precision} and nothing measured")
    return peak


def floor_verdict(floor_ratio: float) -> str | None:
    """None when a row is at or above its floor; else why it may be faster, or that it should not be."""
    if floor_ratio >= 1.0:
        return None
    if floor_ratio * KNOWN_ALGORITHMIC_SAVING >= 1.0:
        return "below the direct-convolution floor: possible only with fewer multiplies (e.g. Winograd)"
    return (f"beats the floor by more than Winograd F(2,3)'s {KNOWN_ALGORITHMIC_SAVING}x saving: "
            "a timing or counting error, or a clock above the one assumed")


def ceiling_for(device: str, precision: str, threads: int, given: float | None = None) -> Ceiling:
    """This machine's ceiling for ``precision`` on ``device`` (``given``: a FLOP/s the user set)."""
    import torch

    from .machine import cpu_clock_ghz, cpu_features
    from .timing import measure_peak_flops

    if given:
        return Ceiling(given, "given (--peak-tflops)")
    # torch has no int8 matmul to probe; the others are measured to catch a clock above the reported one
    measured = measure_peak_flops(device, precision) if precision != "int8" else None
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else ""
    return device_ceiling(device, precision, cpu_features(), threads, cpu_clock_ghz(), measured, gpu)
