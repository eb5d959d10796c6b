"""Parity matrix: every runtime against the PyTorch fp32 reference, on random inputs and photos."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from export.verify import reference_runner, verification_inputs
from runtimes.compare import first_line, run_and_compare

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
    expected: dict[str, list] = {}  # the fp32 reference runs once per device, shared by every spec
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
        progress(f"run   {spec.label}")
        try:
            runner, _ = make_runner(spec, cache, batch, height, width, threads=threads)
        except Exception as exc:  # noqa: BLE001 - one broken runtime must not hide the others
            rows.append({**base, "input": "-", "status": "error", "reason": first_line(exc)})
            progress(f"error {spec.label}: {rows[-1]['reason']}")
            continue
        for result in run_and_compare([runner], inputs, reference_runner(model), record_errors=True,
                                      progress=progress, expected=expected):
            case = result.to_dict()
            case.pop("shape")
            rows.append({**base, **case})
    return rows
