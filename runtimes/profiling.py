"""Where a runner's time goes: one call under the runtime's own profiler, as a per-op table.

Each runtime's profiler speaks its own language; this module turns each into :class:`OpTime`
rows (one per layer / node / op) inside a :class:`Profile`:

* torch family (eager, TorchScript, torch.compile, AOTInductor): ``torch.profiler`` with CPU
  activity, plus CUDA on a GPU; rows are aten ops / CUDA kernels by self time.
* ONNX Runtime: ``SessionOptions.enable_profiling``'s JSON trace; rows are graph nodes after
  ORT's fusions, named by the kernel ORT ran (``op_name``: ``QLinearConv``, ``Conv``,
  ``DequantizeLinear``…) and the element type of their first input.
* OpenVINO: the CPU plugin's performance counters (``PERF_COUNT``); rows are executed layers,
  named by the kernel implementation (``exec_type``, e.g. ``brgconv_avx512_amx_I8``), whose
  suffix says the precision the layer really ran in.

The profiled call is one extra call after one warm-up call; its wall time is recorded beside the
per-op sum so a reader can see how much the profiler itself added.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

#: rows shown when no top-N is asked for
DEFAULT_TOP = 15


@dataclass(frozen=True)
class OpTime:
    """One layer / node / op of one profiled call."""

    name: str
    #: what ran: the op type or kernel implementation the runtime picked
    kernel: str
    #: the element type it computed in, where the profiler says (None otherwise)
    precision: str | None
    calls: int
    total_ms: float


@dataclass
class Profile:
    """Per-op times of one call; ``wall_ms`` is that call's own wall time under the profiler."""

    tool: str
    wall_ms: float
    ops: list[OpTime] = field(default_factory=list)

    @property
    def total_ms(self) -> float:
        return sum(op.total_ms for op in self.ops)

    def top(self, count: int = DEFAULT_TOP) -> list[OpTime]:
        return sorted(self.ops, key=lambda op: op.total_ms, reverse=True)[:count]

    def by_kernel(self) -> list[dict[str, Any]]:
        """``[{kernel, precision, calls, total_ms, share}]``, slowest first: which implementations the time went to."""
        groups: dict[tuple[str, str | None], list[OpTime]] = {}
        for op in self.ops:
            groups.setdefault((op.kernel, op.precision), []).append(op)
        total = self.total_ms or 1.0
        rows = [
            {"kernel": kernel, "precision": precision, "calls": sum(op.calls for op in ops),
             "total_ms": sum(op.total_ms for op in ops), "share": sum(op.total_ms for op in ops) / total}
            for (kernel, precision), ops in groups.items()
        ]
        return sorted(rows, key=lambda row: row["total_ms"], reverse=True)

    def to_dict(self, top: int = DEFAULT_TOP) -> dict[str, Any]:
        total = self.total_ms or 1.0
        return {
            "tool": self.tool, "wall_ms": self.wall_ms, "ops_total_ms": self.total_ms, "op_count": len(self.ops),
            "top": [{**asdict(op), "share": op.total_ms / total} for op in self.top(top)],
            "by_kernel": self.by_kernel(),
        }


def timed(call: Callable[[], Any]) -> float:
    """Wall milliseconds of ``call()``."""
    begin = time.perf_counter()
    call()
    return (time.perf_counter() - begin) * 1e3


# -- torch.profiler ----------------------------------------------------------------------------


def profile_torch(runner: Any, x: torch.Tensor) -> Profile:
    """``runner.infer(x)`` once under ``torch.profiler`` (CPU, and CUDA kernels on a GPU).

    Rows are ops by *self* time (an op's own time, not its children's), so they add up to the
    call; on CUDA they are ranked by device time, where the work is.
    """
    from torch.profiler import ProfilerActivity, profile

    on_cuda = runner.device == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_cuda else [])
    runner.infer(x)  # warm-up: lazy initialisation and autotuning stay out of the table
    runner.synchronize()
    with profile(activities=activities, record_shapes=False) as prof:
        wall_ms = timed(lambda: (runner.infer(x), runner.synchronize()))
    return Profile("torch.profiler (CUDA)" if on_cuda else "torch.profiler (CPU)", wall_ms,
                   torch_rows(prof.key_averages(), on_cuda, runner.precision))


def torch_rows(averages: Iterable[Any], on_cuda: bool, precision: str) -> list[OpTime]:
    """``prof.key_averages()`` -> rows by self time (device time on CUDA, CPU time otherwise)."""
    rows = []
    for event in averages:
        if on_cuda:  # torch >= 2.4 names it self_device_time_total; older ones self_cuda_time_total
            micros = getattr(event, "self_device_time_total", None)
            micros = getattr(event, "self_cuda_time_total", 0.0) if micros is None else micros
        else:
            micros = event.self_cpu_time_total
        if micros > 0:
            rows.append(OpTime(event.key, event.key, precision, int(event.count), micros / 1e3))
    return rows


# -- ONNX Runtime --------------------------------------------------------------------------------


def onnxruntime_rows(trace: list[dict[str, Any]]) -> list[OpTime]:
    """Rows of an ONNX Runtime profile trace: one per node, from its ``*_kernel_time`` events.

    ``args.op_name`` is the kernel that ran after ORT's graph fusions (``QLinearConv``,
    ``FusedConv``, ``DequantizeLinear``…); the precision is the element type of its first input.
    """
    nodes: dict[str, dict[str, Any]] = {}
    for event in trace:
        name = str(event.get("name", ""))
        if event.get("cat") != "Node" or not name.endswith("_kernel_time"):
            continue
        args = event.get("args", {})
        node = nodes.setdefault(name[: -len("_kernel_time")], {
            "kernel": str(args.get("op_name", "?")), "precision": _first_input_type(args), "calls": 0, "us": 0.0})
        node["calls"] += 1
        node["us"] += float(event.get("dur", 0))
    return [OpTime(name, node["kernel"], node["precision"], node["calls"], node["us"] / 1e3)
            for name, node in nodes.items()]


def _first_input_type(args: dict[str, Any]) -> str | None:
    shapes = args.get("input_type_shape") or []
    if shapes and isinstance(shapes[0], dict) and shapes[0]:
        return next(iter(shapes[0]))
    return None


def read_onnxruntime_trace(path: str | Path) -> list[dict[str, Any]]:
    """The JSON trace ``session.end_profiling()`` wrote (a list of Chrome trace events)."""
    trace = json.loads(Path(path).read_text())
    return trace if isinstance(trace, list) else trace.get("traceEvents", [])


# -- OpenVINO ------------------------------------------------------------------------------------

#: exec_type suffixes of the CPU plugin and the precision they name
_OV_PRECISION_SUFFIXES = {"_I8": "i8", "_U8": "u8", "_BF16": "bf16", "_FP16": "f16", "_F16": "f16",
                          "_FP32": "f32", "_F32": "f32"}


def openvino_rows(infos: Iterable[Any]) -> list[OpTime]:
    """``request.profiling_info`` -> rows of the layers that ran (status EXECUTED, time > 0).

    ``exec_type`` names the kernel; its suffix the precision it ran in (``jit_avx512_amx_I8``,
    ``brgconv_avx512_amx_BF16``, ``ref_any_FP32``). Layers OpenVINO fused into another report
    ``NOT_RUN`` with no time and are left out.
    """
    rows = []
    for info in infos:
        millis = info.real_time.total_seconds() * 1e3
        if millis <= 0 or "NOT_RUN" in str(info.status):
            continue
        rows.append(OpTime(info.node_name, f"{info.node_type}:{info.exec_type}", openvino_precision(info.exec_type),
                           1, millis))
    return rows


def openvino_precision(exec_type: str) -> str | None:
    """``"brgconv_avx512_amx_I8"`` -> ``"i8"``; None when the kernel name carries no precision."""
    for suffix, precision in _OV_PRECISION_SUFFIXES.items():
        if exec_type.upper().endswith(suffix):
            return precision
    return None
