"""Comparator: how far a runtime's output is from the PyTorch fp32 reference.

Kept apart from the runners (as in Polygraphy): runners produce arrays, this judges them.
Tolerances per precision come from :mod:`dmphn_core.precision`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from dmphn_core.errors import DMPHNError, RuntimeUnavailable
from dmphn_core.precision import Tolerance, tolerance_for

from .base import Runner


@dataclass(frozen=True)
class Comparison:
    """How far an output is from its reference; abs values are |output - reference| per element."""

    max_abs: float
    mean_abs: float
    psnr_db: float  # inf when identical
    finite: bool
    passed: bool
    tolerance: str
    median_abs: float = math.nan
    p99_abs: float = math.nan
    #: ||output - reference||_2 / ||reference||_2 (0 when identical, inf for a zero reference)
    rel_err: float = math.nan

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return (
            f"{verdict}: max_abs={self.max_abs:.3g} p99_abs={self.p99_abs:.3g} median_abs={self.median_abs:.3g} "
            f"mean_abs={self.mean_abs:.3g} rel_err={self.rel_err:.3g} psnr={self.psnr_db:.2f}dB ({self.tolerance})"
        )


def _as_float64(array: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    return np.asarray(array, dtype=np.float64)


def psnr_db(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor, data_range: float = 1.0) -> float:
    """PSNR in dB between two arrays of the same shape (inf when identical)."""
    mse = float(np.mean((_as_float64(a) - _as_float64(b)) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(data_range**2 / mse)


def relative_error(output: np.ndarray | torch.Tensor, reference: np.ndarray | torch.Tensor) -> float:
    """``||output - reference||_2 / ||reference||_2``: scale-free, so it judges intermediate features too."""
    out, ref = _as_float64(output), _as_float64(reference)
    error, scale = float(np.linalg.norm(out - ref)), float(np.linalg.norm(ref))
    if scale == 0.0:
        return 0.0 if error == 0.0 else math.inf
    return error / scale


def compare_outputs(
    output: np.ndarray | torch.Tensor, reference: np.ndarray | torch.Tensor, tolerance: Tolerance,
    data_range: float = 1.0,
) -> Comparison:
    """``output`` vs ``reference`` (same shape); PSNR over ``data_range`` (1.0: images in [0, 1])."""
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
        median_abs=float(np.median(diff)),
        p99_abs=float(np.percentile(diff, 99)),
        rel_err=relative_error(out, ref),
        psnr_db=psnr_db(out, ref, data_range),
        finite=True,
        passed=True,
        tolerance=tolerance.describe(),
    )
    passed = (tolerance.max_abs is None or comparison.max_abs <= tolerance.max_abs) and (
        tolerance.min_psnr_db is None or comparison.psnr_db >= tolerance.min_psnr_db
    )
    return Comparison(**{**asdict(comparison), "passed": passed})


# -- running runners side by side (Polygraphy's Comparator.run + compare_accuracy) -------------


@dataclass
class CaseResult:
    """One runner on one input: its comparison with the reference, or why it could not run."""

    runner: dict[str, Any]
    input: str
    shape: tuple[int, ...]
    comparison: Comparison | None = None
    error: str | None = None
    #: the runner's output, kept only when asked (``keep_outputs``)
    output: np.ndarray | None = None
    #: the error says the runtime cannot run here (RuntimeUnavailable), not that it broke
    unavailable: bool = False

    @property
    def status(self) -> str:
        if self.comparison is None:
            return "skipped" if self.unavailable else "error"
        return "pass" if self.comparison.passed else "fail"

    def to_dict(self) -> dict[str, Any]:
        case = {"input": self.input, "shape": list(self.shape), "status": self.status}
        if self.comparison is not None:
            case.update(self.comparison.to_dict())
        if self.error is not None:
            case["reason"] = self.error
        return case


def first_line(exc: BaseException) -> str:
    """``exc`` as one line: its own message for toolkit errors, else ``Type: message``."""
    message = (str(exc).strip().splitlines() or [""])[0]
    return message if isinstance(exc, DMPHNError) else f"{type(exc).__name__}: {message}"


def run_and_compare(
    runners: Iterable[Runner],
    inputs: Sequence[tuple[str, np.ndarray]],
    reference: Callable[[str], Runner],
    *,
    tolerance: Tolerance | None = None,
    record_errors: bool = False,
    progress: Callable[[str], None] | None = None,
    expected: dict[str, list[np.ndarray]] | None = None,
    keep_outputs: bool = False,
) -> list[CaseResult]:
    """Run every runner on every ``(label, (B, 3, H, W) array)`` input and compare with the reference.

    ``reference(device)`` makes the runner whose outputs are the truth on that device (e.g. the
    eager fp32 model); it runs once per device, whatever the number of runners. ``tolerance``
    None judges each runner by its precision's default. A runner that raises ends its own row
    as an ``error`` result when ``record_errors`` (one broken runtime must not hide the others),
    else the exception propagates. Runners not yet active are activated and deactivated here.
    ``expected``: reference outputs per device, filled here and reusable by the next call on the
    same inputs (so a matrix of runtimes runs the reference once). ``keep_outputs`` keeps each
    runner's output on its result (e.g. to compare it with published files too).
    """
    expected = {} if expected is None else expected
    results: list[CaseResult] = []
    for runner in runners:
        if runner.device not in expected:
            with reference(runner.device) as truth:
                expected[runner.device] = [np.asarray(truth.infer(x)) for _, x in inputs]
        judge = tolerance or tolerance_for(runner.precision)
        was_active = runner.is_active
        try:
            runner.activate()
            outputs = [runner.infer(x) for _, x in inputs]
        except Exception as exc:  # noqa: BLE001 - reported per runner when record_errors
            if not record_errors:
                raise
            results.append(CaseResult(runner.describe(), "-", (), error=first_line(exc),
                                      unavailable=isinstance(exc, RuntimeUnavailable)))
            if progress:
                progress(f"error {runner.name}: {results[-1].error}")
            continue
        finally:
            if not was_active:
                runner.deactivate()
        for (label, x), output, truth in zip(inputs, outputs, expected[runner.device]):
            results.append(CaseResult(runner.describe(), label, tuple(x.shape), compare_outputs(output, truth, judge),
                                      output=np.asarray(output) if keep_outputs else None))
            if progress:
                progress(f"      {label}: {results[-1].comparison.summary()}")
    return results
