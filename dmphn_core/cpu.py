"""Which CPU this is: its model name and the instruction-set features that decide what reduced
precision costs on it. The one home of these facts: benchmark reports name the machine with
them, and measured speed tables (:mod:`export.speed_table`) are keyed by them."""

from __future__ import annotations

import platform

#: CPU features that decide what each precision costs on a CPU (and its peak, benchmarks.peak):
#: AMX tiles (bf16, int8, fp16), AVX-512 bf16/fp16 arithmetic, VNNI int8 dot products (512- and
#: 256-bit), and the AVX-512 / AVX2 FMA baselines.
ISA_FEATURES = ("amx_bf16", "amx_int8", "amx_fp16", "avx512_bf16", "avx512_fp16", "avx512_vnni", "avx_vnni",
                "avx512f", "avx2", "fma")


def read_cpuinfo() -> str:
    """/proc/cpuinfo's text; empty on a system without it (macOS, Windows)."""
    try:
        with open("/proc/cpuinfo") as handle:
            return handle.read()
    except OSError:
        return ""


def cpu_model(cpuinfo: str | None = None) -> str:
    """The ``model name`` of /proc/cpuinfo (else what :mod:`platform` says)."""
    for line in (read_cpuinfo() if cpuinfo is None else cpuinfo).splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_features(cpuinfo: str | None = None) -> dict[str, bool]:
    """``{feature: present}`` for :data:`ISA_FEATURES`, from the ``flags`` line of /proc/cpuinfo.

    On a system without /proc/cpuinfo (macOS, Windows) every feature reads False.
    """
    flags: set[str] = set()
    for line in (read_cpuinfo() if cpuinfo is None else cpuinfo).splitlines():
        if line.startswith(("flags", "Features")):  # x86 "flags", ARM "Features"
            flags = set(line.split(":", 1)[1].split())
            break
    return {feature: feature in flags for feature in ISA_FEATURES}


__all__ = ["ISA_FEATURES", "cpu_features", "cpu_model", "read_cpuinfo"]
