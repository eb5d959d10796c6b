"""Every export checks itself: run the artifact, compare with PyTorch fp32, pass or fail.

Inputs are fixed (seeded) random images and a real photo bundled with scikit-image. The
reference is the eager static-shape model in float32 (TF32 off) on the runner's device.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from dmphn_core.samples import sample_photo
from runtimes.base import Runner
from runtimes.compare import Comparison, Tolerance, run_and_compare
from runtimes.torch_eager import TorchRunner
from runtimes.torch_utils import tf32_mode

PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "motorcycle_left.png")


def verification_inputs(batch: int, height: int, width: int, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """``[(label, (B, 3, H, W) float32)]``: one seeded random batch and one batch of photos."""
    generator = torch.Generator().manual_seed(seed)
    random = torch.rand(batch, 3, height, width, generator=generator).numpy()
    photos = np.stack([sample_photo(height, width, PHOTOS[i % len(PHOTOS)]).transpose(2, 0, 1) for i in range(batch)])
    return [(f"random(seed={seed})", random), ("photo", np.ascontiguousarray(photos, dtype=np.float32))]


def blurred_photos(batch: int, height: int, width: int, seed: int = 0, offset: int = 0) -> np.ndarray:
    """(B, 3, H, W) float32: held-out bundled photos blurred along random camera-shake paths."""
    from dmphn_core.data.camera_shake import ShakeSettings, camera_path, shake
    from dmphn_core.samples import HELD_OUT_PHOTOS

    settings = ShakeSettings()
    blurred = []
    for i in range(batch):
        rng = np.random.default_rng([seed, offset, i])
        sharp = sample_photo(height, width, HELD_OUT_PHOTOS[(offset + i) % len(HELD_OUT_PHOTOS)])
        blurred.append(shake(sharp, camera_path(rng, settings), settings, rng)["blur"].transpose(2, 0, 1))
    return np.ascontiguousarray(np.stack(blurred), dtype=np.float32)


def natural_inputs(batch: int, height: int, width: int, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """``[(label, (B, 3, H, W) float32)]``: two batches of camera-shake blurred held-out photos.

    What quantized (int8) artifacts are judged on: their activation ranges are calibrated on
    blurred natural images (never these photos), and neither uniform noise nor a sharp photo
    is the input a deblurring model is deployed for.
    """
    return [(f"blurred photo {k + 1}", blurred_photos(batch, height, width, seed, offset=k)) for k in range(2)]


def inputs_for(precision: str, batch: int, height: int, width: int, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """The inputs an artifact of ``precision`` is judged on: int8 on natural images only."""
    if precision == "int8":
        return natural_inputs(batch, height, width, seed)
    return verification_inputs(batch, height, width, seed)


def reference_output(model: nn.Module, x: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Eager fp32 output of ``model`` (not modified: evaluated on a copy when moved)."""
    params = next(model.parameters())
    reference = model if params.device.type == device and params.dtype == torch.float32 else _moved(model, device)
    with torch.inference_mode(), tf32_mode(False):
        return reference.eval()(torch.from_numpy(x).to(device)).float().cpu().numpy()


def _moved(model: nn.Module, device: str) -> nn.Module:
    return copy.deepcopy(model).to(device, torch.float32)


@dataclass
class VerificationReport:
    runner: dict
    tolerance: str
    cases: list[dict] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.cases) and all(case["passed"] for case in self.cases)

    @property
    def min_psnr_db(self) -> float | None:
        """The worst case's PSNR (dB) vs fp32: what the artifact's quality is recorded as (None: no case)."""
        return min((case["psnr_db"] for case in self.cases), default=None)

    def add(self, label: str, shape: tuple[int, ...], comparison: Comparison) -> None:
        self.cases.append({"input": label, "shape": list(shape), **comparison.to_dict()})

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}

    def lines(self) -> list[str]:
        """Human-readable lines, one per case, then the verdict."""
        out = [f"verify {self.runner.get('runner', '?')} against PyTorch fp32 ({self.tolerance}):"]
        for case in self.cases:
            out.append(
                f"  {case['input']:<16} {'x'.join(map(str, case['shape'])):<14} max_abs={case['max_abs']:.3g} "
                f"mean_abs={case['mean_abs']:.3g} psnr={case['psnr_db']:.2f}dB {'ok' if case['passed'] else 'FAIL'}"
            )
        out.append("verification " + ("passed" if self.passed else "FAILED"))
        return out


def verify_runner(
    runner: Runner,
    model: nn.Module,
    tolerance: Tolerance,
    shapes: list[tuple[int, int, int]],
    seed: int = 0,
) -> VerificationReport:
    """Run ``runner`` at each ``(batch, height, width)``; it is activated and deactivated here."""
    report = VerificationReport(runner=runner.describe(), tolerance=tolerance.describe())
    inputs = [case for batch, height, width in shapes for case in inputs_for(runner.precision, batch, height, width, seed)]
    with runner:
        for result in run_and_compare([runner], inputs, reference_runner(model), tolerance=tolerance):
            report.add(result.input, result.shape, result.comparison)
    return report


def reference_runner(model: nn.Module):
    """``device -> runner`` of the truth every export is judged by: the eager model in fp32 (TF32 off)."""
    return lambda device: TorchRunner(model, device=device, precision="fp32", name="reference")
