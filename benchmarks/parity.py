"""Parity matrix: every runtime against the PyTorch fp32 reference, on random inputs and photos."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from dmphn_core.errors import DMPHNError
from export.verify import reference_output, verification_inputs
from runtimes.compare import compare_outputs, tolerance_for

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
    threads: int | None = None,
) -> list[dict[str, Any]]:
    """One row per (spec, input): max abs, mean abs, PSNR vs reference, pass/fail by precision.

    ``threads``: CPU threads of runtimes with their own pool (ONNX Runtime); torch's are set by the caller.
    """
    model = cache.model
    model.geometry.check_size(height, width)
    inputs = verification_inputs(batch, height, width, seed)
    references: dict[str, list] = {}
    rows: list[dict[str, Any]] = []
    for spec in specs:
        base = {
            "runtime": spec.runtime, "runner": spec.label, "device": spec.device, "precision": spec.precision,
            "batch": batch, "height": height, "width": width, "model": model.config.name, "machine": machine,
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
            runner, _ = make_runner(spec, cache, batch, height, width, threads=threads)
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
