"""Describe the machine a result was measured on (results are meaningless without it)."""

from __future__ import annotations

import datetime
import os
import platform
import re
import sys
from importlib import metadata
from typing import Any

import torch


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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


def cpu_features(cpuinfo: str | None = None) -> dict[str, bool]:
    """``{feature: present}`` for :data:`ISA_FEATURES`, from the ``flags`` line of /proc/cpuinfo.

    On a system without /proc/cpuinfo (macOS, Windows) every feature reads False.
    """
    if cpuinfo is None:
        cpuinfo = read_cpuinfo()
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        if line.startswith(("flags", "Features")):  # x86 "flags", ARM "Features"
            flags = set(line.split(":", 1)[1].split())
            break
    return {feature: feature in flags for feature in ISA_FEATURES}


def cpu_clock_ghz(cpuinfo: str | None = None,
                  max_khz_file: str = "/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq") -> float | None:
    """The highest clock the OS reports in GHz: cpufreq's max, ``cpu MHz``, or the model name's "@ x GHz"."""
    if cpuinfo is None:
        cpuinfo = read_cpuinfo()
    found = [float(m) / 1000 for m in re.findall(r"^cpu MHz\s*:\s*([\d.]+)", cpuinfo, re.MULTILINE)]
    found += [float(g) for g in re.findall(r"^model name\s*:.*@\s*([\d.]+)\s*GHz", cpuinfo, re.MULTILINE)]
    try:
        with open(max_khz_file) as handle:
            found.append(int(handle.read().strip()) / 1e6)
    except (OSError, ValueError):
        pass
    return max(found) if found else None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine_info(device: str = "cpu") -> dict[str, Any]:
    info: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_features": cpu_features(),
        "cpu_clock_ghz": cpu_clock_ghz(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": _version("onnxruntime") or _version("onnxruntime-gpu"),
        "tensorrt": _version("tensorrt"),
        "openvino": _version("openvino"),
        "nncf": _version("nncf"),
        "command": " ".join([os.path.basename(sys.argv[0]), *sys.argv[1:]]),
    }
    if device == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda)
    return info
