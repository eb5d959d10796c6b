"""Parity matrix: every runtime against the PyTorch fp32 reference, on random inputs and photos,
or on a folder of real frames, then also against expected outputs (e.g. the authors' published ones)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from dmphn_core.authors import MIN_PSNR_VS_PUBLISHED_DB
from dmphn_core.errors import DMPHNError, RuntimeUnavailable
from dmphn_core.imageio import list_images, read_image
from dmphn_core.precision import Tolerance, tolerance_for
from export.verify import inputs_for, reference_runner
from runtimes.compare import compare_outputs, first_line, run_and_compare

from .prepare import ArtifactCache, RunnerSpec, make_runner
from .saved_outputs import array_sha256, check_inputs, load_outputs


def run_parity(
    specs: Iterable[RunnerSpec],
    cache: ArtifactCache,
    batch: int,
    height: int,
    width: int,
    machine: dict[str, Any],
    seed: int = 0,
    progress: Callable[[str], None] = print,
    threads: int | None = None,
    saved: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """One row per (spec, input): max abs, mean abs, PSNR vs reference, pass/fail by precision.

    ``threads``: CPU threads of runtimes with their own pool (ONNX Runtime); torch's are set by the caller.
    ``saved``: when given, each output is appended to it (for :func:`benchmarks.saved_outputs.save_outputs`).
    """
    model = cache.model
    model.geometry.check_size(height, width)
    # int8 is judged on blurred photos (what it is calibrated for), the others on noise and a photo
    input_sets = {kind: inputs_for(kind, batch, height, width, seed) for kind in ("fp32", "int8")}
    expected: dict[str, dict[str, list]] = {kind: {} for kind in input_sets}  # the reference runs once per device
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
        kind = "int8" if spec.precision == "int8" else "fp32"
        progress(f"run   {spec.label}")
        try:
            runner, _ = make_runner(spec, cache, batch, height, width, threads=threads)
        except RuntimeUnavailable as exc:  # found out only when preparing (e.g. no such CPU support)
            rows.append({**base, "input": "-", "status": "skipped", "reason": str(exc)})
            progress(f"skip  {spec.label}: {exc}")
            continue
        except Exception as exc:  # noqa: BLE001 - one broken runtime must not hide the others
            rows.append({**base, "input": "-", "status": "error", "reason": first_line(exc)})
            progress(f"error {spec.label}: {rows[-1]['reason']}")
            continue
        results = run_and_compare([runner], input_sets[kind], reference_runner(model), record_errors=True,
                                  progress=progress, expected=expected[kind], keep_outputs=saved is not None)
        for index, result in enumerate(results):
            case = result.to_dict()
            case.pop("shape")
            rows.append({**base, **case})
            if saved is not None and result.output is not None:
                saved.append({**_saved_fields(base), "input": result.input, "input_kind": kind, "seed": seed,
                              "input_array": input_sets[kind][index][1], "output": result.output})
    return rows


def _saved_fields(base: dict[str, Any]) -> dict[str, Any]:
    keys = ("runtime", "runner", "device", "precision", "batch", "height", "width", "model", "weights")
    return {key: base[key] for key in keys}


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
    threads: int | None = None,
    saved: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Each runtime on each frame of ``inputs`` at its full size, batch 1.

    Per (spec, frame): a row ``against="pytorch-fp32"`` judged by the precision's tolerance and,
    with ``expected`` (a folder of 8-bit images under the same file names: e.g. the authors'
    published outputs), a row ``against="expected"``: the runtime's output clipped to [0, 1]
    against that file, passing at ``expected_min_psnr_db`` (a reduced precision at its own PSNR bar
    when that is lower: its error against fp32 adds to the port's). ``mean_signed_lsb`` says which way
    the output leans (8-bit steps; their files were truncated, so a faithful port leans ~+0.5).
    """
    model = cache.model
    frames = load_frames(inputs)
    height, width = frames[0][1].shape[-2:]
    model.geometry.check_size(height, width)
    names = [name for name, _ in frames]
    targets = _expected_images(expected, names) if expected is not None else None
    expected_outputs: dict[str, list] = {}  # the fp32 reference runs once per device, shared by every spec
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
        progress(f"run   {spec.label} on {len(frames)} frame(s) of {height}x{width}")
        try:
            runner, _ = make_runner(spec, cache, 1, height, width, threads=threads)
        except Exception as exc:  # noqa: BLE001 - one broken runtime must not hide the others
            rows.append({**base, "input": "-", "status": "error", "reason": first_line(exc)})
            progress(f"error {spec.label}: {rows[-1]['reason']}")
            continue
        own_bar = tolerance_for(spec.precision).min_psnr_db
        expected_tolerance = Tolerance(min_psnr_db=min(expected_min_psnr_db, own_bar or expected_min_psnr_db))
        results = run_and_compare([runner], frames, reference_runner(model), record_errors=True, progress=progress,
                                  expected=expected_outputs, keep_outputs=targets is not None or saved is not None)
        for index, result in enumerate(results):
            case = result.to_dict()
            case.pop("shape")
            rows.append({**base, **case, "against": "pytorch-fp32"})
            if saved is not None and result.output is not None:
                saved.append({**_saved_fields(base), "input": result.input, "input_kind": "frames",
                              "input_array": frames[index][1], "output": result.output})
            if targets is None or result.output is None:
                continue
            clipped = np.clip(np.asarray(result.output, dtype=np.float32), 0.0, 1.0)
            comparison = compare_outputs(clipped, targets[index], expected_tolerance)
            lean = float(np.mean(clipped.astype(np.float64) - targets[index])) * 255.0
            rows.append({**base, "input": result.input, "against": "expected", "expected": str(expected),
                         "status": "pass" if comparison.passed else "fail", **comparison.to_dict(),
                         "mean_signed_lsb": lean})
            progress(f"      {result.input} vs {expected}: {comparison.summary()}")
    return rows


def run_parity_loaded(
    folder: Path, cache: ArtifactCache, machine: dict[str, Any], inputs: Path | None = None,
    progress: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Outputs saved by ``dmphn-parity --save-outputs`` (e.g. on a GPU host) against this machine's
    fp32 reference on the same inputs (regenerated, or ``inputs``' frames; checked by hash)."""
    manifest, loaded = load_outputs(folder)
    model = cache.model
    frames = load_frames(inputs) if inputs is not None else None

    def inputs_of(record: dict[str, Any]) -> list[tuple[str, np.ndarray]]:
        if record.get("weights") != cache.weights:
            raise DMPHNError(f"the saved {record.get('runner')} output ran {record.get('weights')}, "
                             f"not these weights ({cache.weights}): pass the same --checkpoint")
        if record.get("input_kind") == "frames":
            if frames is None:
                raise DMPHNError("the saved outputs were made from frames: pass the same --inputs folder")
            return frames
        return inputs_for(str(record.get("input_kind")), int(record["batch"]), int(record["height"]),
                          int(record["width"]), int(record.get("seed", 0)))

    xs = check_inputs([record for record, _ in loaded], inputs_of)
    references: dict[str, np.ndarray] = {}
    rows = []
    with reference_runner(model)("cpu") as reference:
        for (record, output), x in zip(loaded, xs):
            key = array_sha256(x)
            if key not in references:
                references[key] = np.asarray(reference.infer(x))
            comparison = compare_outputs(output, references[key], tolerance_for(str(record["precision"])))
            progress(f"      saved {record['runner']} on {record['input']}: {comparison.summary()}")
            rows.append({**{k: record[k] for k in ("runtime", "device", "precision", "batch", "height", "width",
                                                   "model", "weights", "input")},
                         "runner": f"{record['runner']} (saved)", "saved_in": str(folder),
                         "saved_on": manifest.get("machine", {}), "machine": machine, "against": "pytorch-fp32",
                         "status": "pass" if comparison.passed else "fail", **comparison.to_dict()})
    return rows
