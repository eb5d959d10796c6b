"""Describe the machine a result was measured on (results are meaningless without it)."""

from __future__ import annotations

import datetime
import os
import platform
import re
import shlex
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


def command_line(argv: list[str] | None = None, orig_argv: list[str] | None = None) -> str:
    """The command that produced a result, as a shell would take it back. Under ``python -c CODE``
    ``sys.argv[0]`` is just "-c", so the interpreter's own argument list (with CODE) is used instead."""
    argv = sys.argv if argv is None else argv
    if argv and argv[0] == "-c":
        orig = getattr(sys, "orig_argv", []) if orig_argv is None else orig_argv
        if orig:
            return shlex.join([os.path.basename(orig[0]), *orig[1:]])
    return shlex.join([os.path.basename(argv[0]) if argv else "?", *argv[1:]])


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
        "command": command_line(),
    }
    if device == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda)
    return info


__all__ = ["ISA_FEATURES", "command_line", "cpu_clock_ghz", "cpu_features", "machine_info"]  # the CPU facts live in dmphn_core.cpu
