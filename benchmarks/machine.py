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

from dmphn_core.cpu import ISA_FEATURES, cpu_features, cpu_model, read_cpuinfo


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
        "cpu": cpu_model(),
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


__all__ = ["ISA_FEATURES", "cpu_clock_ghz", "cpu_features", "machine_info"]  # the CPU facts live in dmphn_core.cpu
