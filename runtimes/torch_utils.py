"""Small PyTorch helpers shared by the torch-based runners (eager, compile, AOTInductor)."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import torch
from torch import nn


@contextlib.contextmanager
def torchscript_on_purpose() -> Iterator[None]:
    """Silence PyTorch's "`torch.jit.*` is deprecated" warnings inside this block only.

    PyTorch deprecated TorchScript (AOTInductor ``.pt2`` is the successor path), but this toolkit
    still promises ``.ts`` artifacts for LibTorch users, so its own trace/save/load calls are
    deliberate; anyone else's TorchScript use keeps warning.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=DeprecationWarning)
        yield


def cpu_emulation_reason(precision: str) -> str | None:
    """Why PyTorch would only emulate ``precision`` on this CPU (None: native, or float32).

    Without bf16 instructions (AVX512-BF16 or AMX) PyTorch's CPU convolutions still accept bf16,
    but run it through conversions around float32 kernels: the same numbers, far slower. On
    the 2-core AVX2 EPYC (2026-11-26, DMPHN-1-2-4-8, 2 threads) bf16 took 9x the fp32 time at
    32x64 in channels_last and 60x in NCHW (91x at 64x128); at 352x640 one NCHW call did not
    finish in 15 min. fp16 counts as native only with AMX-FP16 (the check PyTorch offers;
    AVX512-FP16 alone is not detected here).
    """
    if precision == "bf16" and not (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()):
        return "this CPU has no bf16 instructions (AVX512-BF16 or AMX): PyTorch would emulate bf16, about 10x slower than fp32"
    if precision == "fp16" and not torch.cpu._is_amx_fp16_supported():
        return "this CPU has no AMX-FP16: PyTorch would emulate fp16 convolutions, far slower than fp32"
    return None


@contextlib.contextmanager
def tf32_mode(enabled: bool) -> Iterator[None]:
    """Allow or forbid TF32 in cuDNN convs and cuBLAS matmuls, restoring the old flags after.

    PyTorch allows TF32 in cuDNN convolutions by default, so an "fp32" CUDA run must turn
    it off explicitly to be fp32.
    """
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


@contextlib.contextmanager
def cudnn_benchmark(enabled: bool) -> Iterator[None]:
    """Let cuDNN time its convolution algorithms per input shape (``torch.backends.cudnn.benchmark``) in this block.

    The first call at each shape pays for the search; later calls use the fastest algorithm
    found instead of cuDNN's heuristic pick. No effect on the CPU.
    """
    old = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = old


def default_channels_last(device: str, precision: str) -> bool:
    """Whether the torch runners store weights and input as NHWC when not told.

    On for bf16/fp16 on the CPU, where oneDNN's reduced-precision convolutions want it: 6.2x
    faster in bf16 at 32x64 on the 2-core EPYC (2026-11-26, `benchmarks/gpu_session.sh`
    cpu_layout stage). Off on CUDA until a GPU run measures it (the channels_last stage of
    `benchmarks/gpu_session.sh` asks for it explicitly); off for fp32.
    """
    return device == "cpu" and precision in ("bf16", "fp16")


def memory_format(channels_last: bool) -> torch.memory_format:
    return torch.channels_last if channels_last else torch.contiguous_format


def to_compute_input(x: torch.Tensor, dtype: torch.dtype, channels_last: bool) -> torch.Tensor:
    """(B, 3, H, W) float32 -> ``dtype`` in the layout the model's weights are stored in."""
    return x.to(dtype).contiguous(memory_format=memory_format(channels_last))


class Float32IO(nn.Module):
    """Runs ``model`` in ``dtype`` behind float32 input and output: (B, 3, H, W) -> same.

    Every artifact speaks float32 whatever it computes in, so C++ and the runners never
    handle half-precision buffers. For float32 the casts are no-ops that tracing drops.
    ``channels_last``: weights and input NHWC (inside the graph, so a compiler fuses the
    layout change with the cast); the output keeps whatever layout the model gives.
    """

    def __init__(self, model: nn.Module, dtype: torch.dtype, channels_last: bool = False) -> None:
        super().__init__()
        self.model = model.to(dtype=dtype, memory_format=memory_format(channels_last))
        self.dtype = dtype
        self.channels_last = channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(to_compute_input(x, self.dtype, self.channels_last)).to(torch.float32)
