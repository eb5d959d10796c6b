"""Parity matrix: every runtime against the PyTorch fp32 reference, on random inputs and photos,
or on a folder of real frames, then also against expected outputs (e.g. the authors' published ones)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from dmphn_core.authors import MIN_PSNR_VS_PUBLISHED_DB
from dmphn_core.errors import DMPHNError
from dmphn_core.imageio import list_images, read_image
from export.verify import reference_output, verification_inputs
from runtimes.compare import Tolerance, compare_outputs, tolerance_for

from .prepare import ArtifactCache, RunnerSpec, make_runner


def run_parity(
    specs: Iterable[RunnerSpec],
    cache: ArtifactCache,
    batch: int,
    height: int,
    width: int,
    machine: dict[str, Any],
    seed: int = 0,
    progress: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """One row per (spec, input): max abs, mean abs, PSNR vs reference, pass/fail by precision."""
    model = cache.model
    model.geometry.check_size(height, width)
    inputs = verification_inputs(batch, height, width, seed)
    references: dict[str, list] = {}
    rows: list[dict[str, Any]] = []
    for spec in specs:
        base = {
            "runtime": spec.runtime, "runner": spec.label, "device": spec.device, "precision": spec.precision,
            "batch": batch, "height": height, "width": width, "model": model.config.name, "weights": cache.weights,
            "machine": machine,
        }
        reason = spec.unavailable_reason()
        if reason:
            rows.append({**base, "input": "-", "status": "skipped", "reason": reason})
            progress(f"skip  {spec.label}: {reason}")
            continue
        if spec.device not in references:
            references[spec.device] = [reference_output(model, x, spec.device) for _, x in inputs]
        tolerance = tolerance_for(spec.precision)
        progress(f"run   {spec.label}")
        try:
            runner, _ = make_runner(spec, cache, batch, height, width)
            with runner:
                outputs = [runner.infer(x) for _, x in inputs]
        except Exception as exc:  # noqa: BLE001 - one broken runtime must not hide the others
            message = (str(exc).strip().splitlines() or [""])[0]
            reason = message if isinstance(exc, DMPHNError) else f"{type(exc).__name__}: {message}"
            rows.append({**base, "input": "-", "status": "error", "reason": reason})
            progress(f"error {spec.label}: {reason}")
            continue
        for (label, _), output, expected in zip(inputs, outputs, references[spec.device]):
            comparison = compare_outputs(output, expected, tolerance)
            rows.append({**base, "input": label, "status": "pass" if comparison.passed else "fail", **comparison.to_dict()})
            progress(f"      {label}: {comparison.summary()}")
    return rows


def load_frames(folder: Path) -> list[tuple[str, np.ndarray]]:
    """``[(file name, (1, 3, H, W) float32)]`` for every image in ``folder``; all must share one size."""
    files = list_images(folder) if folder.is_dir() else []
    if not files:
        raise DMPHNError(f"no images in {folder}" if folder.is_dir() else f"--inputs {folder} is not a folder")
    frames = [(file.name, np.ascontiguousarray(read_image(file).transpose(2, 0, 1)[None])) for file in files]
    sizes = {frame.shape[-2:] for _, frame in frames}
    if len(sizes) > 1:
        raise DMPHNError(f"frames in {folder} differ in size ({', '.join(f'{h}x{w}' for h, w in sorted(sizes))}); "
                         f"a static-shape artifact runs one size")
    return frames


def _expected_images(folder: Path, names: list[str]) -> list[np.ndarray]:
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise DMPHNError(f"--expected {folder} lacks {len(missing)} of the inputs' file names (first: {missing[0]})")
    return [np.ascontiguousarray(read_image(folder / name).transpose(2, 0, 1)[None]) for name in names]


def run_parity_on_frames(
    specs: Iterable[RunnerSpec],
    cache: ArtifactCache,
    inputs: Path,
    machine: dict[str, Any],
    expected: Path | None = None,
    expected_min_psnr_db: float = MIN_PSNR_VS_PUBLISHED_DB,
    progress: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Each runtime on each frame of ``inputs`` at its full size, batch 1.

    Per (spec, frame): a row ``against="pytorch-fp32"`` judged by the precision's tolerance and,
    with ``expected`` (a folder of 8-bit images under the same file names: e.g. the authors'
    published outputs), a row ``against="expected"``: the runtime's output clipped to [0, 1]
    against that file, passing at ``expected_min_psnr_db``. ``mean_signed_lsb`` says which way
    the output leans (8-bit steps; their files were truncated, so a faithful port leans ~+0.5).
    """
    model = cache.model
    frames = load_frames(inputs)
    height, width = frames[0][1].shape[-2:]
    model.geometry.check_size(height, width)
    names = [name for name, _ in frames]
    targets = _expected_images(expected, names) if expected is not None else None
    expected_tolerance = Tolerance(min_psnr_db=expected_min_psnr_db)
    references: dict[str, list] = {}
    rows: list[dict[str, Any]] = []
    for spec in specs:
        base = {
            "runtime": spec.runtime, "runner": spec.label, "device": spec.device, "precision": spec.precision,
            "batch": 1, "height": height, "width": width, "model": model.config.name, "weights": cache.weights,
            "inputs": str(inputs), "machine": machine,
        }
        reason = spec.unavailable_reason()
        if reason:
            rows.append({**base, "input": "-", "status": "skipped", "reason": reason})
            progress(f"skip  {spec.label}: {reason}")
            continue
        if spec.device not in references:
            references[spec.device] = [reference_output(model, x, spec.device) for _, x in frames]
        tolerance = tolerance_for(spec.precision)
        progress(f"run   {spec.label} on {len(frames)} frame(s) of {height}x{width}")
        try:
            runner, _ = make_runner(spec, cache, 1, height, width)
            with runner:
                outputs = [np.asarray(runner.infer(x), dtype=np.float32) for _, x in frames]
        except Exception as exc:  # noqa: BLE001 - one broken runtime must not hide the others
            message = (str(exc).strip().splitlines() or [""])[0]
            reason = message if isinstance(exc, DMPHNError) else f"{type(exc).__name__}: {message}"
            rows.append({**base, "input": "-", "status": "error", "reason": reason})
            progress(f"error {spec.label}: {reason}")
            continue
        for index, (name, output) in enumerate(zip(names, outputs)):
            comparison = compare_outputs(output, references[spec.device][index], tolerance)
            rows.append({**base, "input": name, "against": "pytorch-fp32",
                         "status": "pass" if comparison.passed else "fail", **comparison.to_dict()})
            progress(f"      {name} vs pytorch-fp32: {comparison.summary()}")
            if targets is None:
                continue
            clipped = np.clip(output, 0.0, 1.0)
            comparison = compare_outputs(clipped, targets[index], expected_tolerance)
            lean = float(np.mean(clipped.astype(np.float64) - targets[index])) * 255.0
            rows.append({**base, "input": name, "against": "expected", "expected": str(expected),
                         "status": "pass" if comparison.passed else "fail", **comparison.to_dict(),
                         "mean_signed_lsb": lean})
            progress(f"      {name} vs {expected}: {comparison.summary()}")
    return rows
