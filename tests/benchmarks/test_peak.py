"""The compute floor's ceiling: instruction-set peak from CPU flags and clock, and its verdicts."""

from __future__ import annotations

import pytest

from benchmarks.machine import cpu_clock_ghz, cpu_features
from benchmarks.peak import (
    KNOWN_ALGORITHMIC_SAVING,
    cpu_peak,
    device_ceiling,
    floor_verdict,
    gpu_peak,
)

AMX = cpu_features("flags\t: fma avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_int8\n")
AVX2 = cpu_features("flags\t: fma avx2\n")


@pytest.mark.parametrize(
    ("features", "precision", "isa", "per_cycle"),
    [
        (AMX, "fp32", "avx512f", 64), (AMX, "bf16", "amx_bf16", 1024), (AMX, "int8", "amx_int8", 2048),
        (AVX2, "fp32", "avx2", 32), (AVX2, "bf16", "avx2", 32), (AVX2, "int8", "avx2", 32),
    ],
)
def test_cpu_peak_is_cores_times_clock_times_the_widest_instruction_sets_rate(features, precision, isa, per_cycle):
    ceiling = cpu_peak(precision, features, threads=1, clock_ghz=2.0)
    assert ceiling.flops_per_s == pytest.approx(2.0e9 * per_cycle)
    assert ceiling.basis.startswith(f"{isa} peak: 1 core(s) x 2.00 GHz x {per_cycle} FLOP/cycle")


def test_clock_is_the_highest_the_os_reports(tmp_path):
    cpuinfo = "model name\t: Intel(R) Xeon(R) Gold 6430 @ 2.10GHz\ncpu MHz\t\t: 800.000\ncpu MHz\t\t: 3100.5\n"
    assert cpu_clock_ghz(cpuinfo, str(tmp_path / "none")) == pytest.approx(3.1005)
    (tmp_path / "max").write_text("3700000\n")
    assert cpu_clock_ghz(cpuinfo, str(tmp_path / "max")) == pytest.approx(3.7)
    assert cpu_clock_ghz("", str(tmp_path / "none")) is None


def test_a_measured_rate_above_the_assumed_peak_replaces_it():
    peak = cpu_peak("fp32", AVX2, 1, 2.0).flops_per_s
    assert device_ceiling("cpu", "fp32", AVX2, 1, 2.0, measured=peak / 2).flops_per_s == peak
    above = device_ceiling("cpu", "fp32", AVX2, 1, 2.0, measured=peak * 1.5)
    assert above.flops_per_s == peak * 1.5 and "above the avx2 peak" in above.basis and "not a peak" in above.basis
    assert "H100 datasheet" in device_ceiling("cuda", "bf16", {}, 1, None, 1e12, "NVIDIA H100 80GB HBM3").basis
    assert gpu_peak("Tesla T4", "fp16") is None
    assert "no known peak" in device_ceiling("cuda", "fp16", {}, 1, None, 5e13, "Tesla T4").basis


def test_verdicts_separate_fast_algorithms_from_the_impossible():
    assert floor_verdict(1.3) is None
    assert "Winograd" in floor_verdict(0.8) and not floor_verdict(0.8).startswith("beats")
    assert floor_verdict(0.9 / KNOWN_ALGORITHMIC_SAVING).startswith("beats the floor")
