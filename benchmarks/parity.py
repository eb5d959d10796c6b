"""Parity matrix: every runtime against the PyTorch fp32 reference, on random inputs and photos."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from dmphn_core.errors import DMPHNError, RuntimeUnavailable
from export.verify import inputs_for, reference_output
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
) -> list[dict[str, Any]]:
    """One row per (spec, input): max abs, mean abs, PSNR vs reference, pass/fail by precision."""
    model = cache.model
    model.geometry.check_size(height, width)
    # int8 is judged on blurred photos (what it is calibrated for), the others on noise and a photo
    input_sets = {kind: inputs_for(kind, batch, height, width, seed) for kind in ("fp32", "int8")}
    references: dict[tuple[str, str], list] = {}
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
        kind = "int8" if spec.precision == "int8" else "fp32"
        inputs = input_sets[kind]
        if (spec.device, kind) not in references:
            references[spec.device, kind] = [reference_output(model, x, spec.device) for _, x in inputs]
        tolerance = tolerance_for(spec.precision)
        progress(f"run   {spec.label}")
        try:
            runner, _ = make_runner(spec, cache, batch, height, width)
            with runner:
                outputs = [runner.infer(x) for _, x in inputs]
        except RuntimeUnavailable as exc:  # found out only when loading (e.g. no such CPU support)
            rows.append({**base, "input": "-", "status": "skipped", "reason": str(exc)})
            progress(f"skip  {spec.label}: {exc}")
            continue
        except Exception as exc:  # noqa: BLE001 - one broken runtime must not hide the others
            message = (str(exc).strip().splitlines() or [""])[0]
            reason = message if isinstance(exc, DMPHNError) else f"{type(exc).__name__}: {message}"
            rows.append({**base, "input": "-", "status": "error", "reason": reason})
            progress(f"error {spec.label}: {reason}")
            continue
        for (label, _), output, expected in zip(inputs, outputs, references[spec.device, kind]):
            comparison = compare_outputs(output, expected, tolerance)
            rows.append({**base, "input": label, "status": "pass" if comparison.passed else "fail", **comparison.to_dict()})
            progress(f"      {label}: {comparison.summary()}")
    return rows
