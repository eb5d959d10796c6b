"""Comparator: how far a runtime's output is from the PyTorch fp32 reference.

Kept apart from the runners (as in Polygraphy): runners produce arrays, this judges them.
The tolerance for each precision lives here and nowhere else.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Tolerance:
    """Pass when every given bound holds (and the output is finite)."""

    max_abs: float | None = None
    min_psnr_db: float | None = None

    def describe(self) -> str:
        parts = []
        if self.max_abs is not None:
            parts.append(f"max_abs<={self.max_abs:g}")
        if self.min_psnr_db is not None:
            parts.append(f"psnr>={self.min_psnr_db:g}dB")
        return " and ".join(parts) or "finite"


#: fp32 must agree to float rounding; reduced precisions are judged by PSNR (dB, range 1)
#: between outputs. bf16 keeps 8 mantissa bits against fp16's 11, hence its lower bar.
DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(max_abs=1e-4),
    "tf32": Tolerance(min_psnr_db=45.0),
    "fp16": Tolerance(min_psnr_db=45.0),
    "bf16": Tolerance(min_psnr_db=35.0),
    # post-training int8 quantization: the quality target of the OpenVINO/NNCF export
    "int8": Tolerance(min_psnr_db=40.0),
}


def tolerance_for(precision: str, *, max_abs: float | None = None, min_psnr_db: float | None = None) -> Tolerance:
    """The default tolerance of ``precision``, with any bound given here replacing its default."""
    base = DEFAULT_TOLERANCES[precision]
    return Tolerance(
        max_abs=max_abs if max_abs is not None else base.max_abs,
        min_psnr_db=min_psnr_db if min_psnr_db is not None else base.min_psnr_db,
    )


@dataclass(frozen=True)
class Comparison:
    max_abs: float
    mean_abs: float
    psnr_db: float  # inf when identical
    finite: bool
    passed: bool
    tolerance: str

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return (
            f"{verdict}: max_abs={self.max_abs:.3g} mean_abs={self.mean_abs:.3g} "
            f"psnr={self.psnr_db:.2f}dB ({self.tolerance})"
        )


def _as_float64(array: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    return np.asarray(array, dtype=np.float64)


def psnr_db(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor, data_range: float = 1.0) -> float:
    """PSNR in dB between two arrays of the same shape (inf when identical)."""
    mse = float(np.mean((_as_float64(a) - _as_float64(b)) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(data_range**2 / mse)


def compare_outputs(
    output: np.ndarray | torch.Tensor, reference: np.ndarray | torch.Tensor, tolerance: Tolerance
) -> Comparison:
    out, ref = _as_float64(output), _as_float64(reference)
    if out.shape != ref.shape:
        raise ValueError(f"output shape {out.shape} differs from reference shape {ref.shape}")
    finite = bool(np.isfinite(out).all())
    if not finite:
        return Comparison(math.nan, math.nan, math.nan, False, False, tolerance.describe())
    diff = np.abs(out - ref)
    comparison = Comparison(
        max_abs=float(diff.max()),
        mean_abs=float(diff.mean()),
        psnr_db=psnr_db(out, ref),
        finite=True,
        passed=True,
        tolerance=tolerance.describe(),
    )
    passed = (tolerance.max_abs is None or comparison.max_abs <= tolerance.max_abs) and (
        tolerance.min_psnr_db is None or comparison.psnr_db >= tolerance.min_psnr_db
    )
    return Comparison(**{**asdict(comparison), "passed": passed})
