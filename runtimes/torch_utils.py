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


class Float32IO(nn.Module):
    """Runs ``model`` in ``dtype`` behind float32 input and output: (B, 3, H, W) -> same.

    Every artifact speaks float32 whatever it computes in, so C++ and the runners never
    handle half-precision buffers. For float32 the casts are no-ops that tracing drops.
    """

    def __init__(self, model: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.model = model.to(dtype=dtype)
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.to(self.dtype)).to(torch.float32)
