"""``dmphn-parity --layers``: where inside the network a candidate leaves the fp32 reference.

The reference (eager PyTorch fp32) and the candidate run the same input with every convolution's
output marked (:mod:`runtimes.layers`); each point is compared like a final output, with PSNR over
the reference point's own range (features are not images in [0, 1]) and the scale-free relative
error. Points, in execution order: every convolution (named by the reference's module path), each
level's features (the decoder's input: that level's encoder output plus the coarser levels') and
each level's residual (the decoder's last convolution). The first point under the floor is where
the loss starts; the points after it show whether it grows or heals.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from dmphn_core.errors import RuntimeUnavailable
from dmphn_core.precision import Tolerance, tolerance_for
from export.verify import inputs_for
from runtimes.base import Runner
from runtimes.compare import compare_outputs, first_line
from runtimes.layers import mark_torch
from runtimes.torch_eager import TorchRunner

from .prepare import ArtifactCache, RunnerSpec, make_runner

#: point floor where a precision's tolerance has no PSNR bar (fp32 is judged by max abs): a
#: faithful float runtime sits far above it
FP32_POINT_FLOOR_DB = 80.0
_LEVEL = re.compile(r"^(encoders|decoders)\.(\d+)\.")


def point_floor(precision: str, min_psnr_db: float | None = None) -> float:
    """The PSNR (dB) a point must reach: ``min_psnr_db``, else the precision's bar, else 80 dB."""
    if min_psnr_db is not None:
        return min_psnr_db
    return tolerance_for(precision).min_psnr_db or FP32_POINT_FLOOR_DB


def conv_order(model: nn.Module) -> list[str]:
    """Module paths of ``model``'s convolutions in execution order (one call on the smallest valid input)."""
    height, width = model.geometry.size_block
    with torch.inference_mode():
        return mark_torch(model, lambda: model(torch.zeros(1, 3, height, width))).conv_names


def decoder_bounds(names: Sequence[str]) -> dict[int, tuple[int, int]]:
    """``{level: (index of the decoder's first conv, index of its last)}`` from the module paths."""
    bounds: dict[int, tuple[int, int]] = {}
    for index, name in enumerate(names):
        match = _LEVEL.match(name)
        if match and match.group(1) == "decoders":
            level = int(match.group(2)) + 1
            first, _ = bounds.get(level, (index, index))
            bounds[level] = (first, index)
    return bounds


def _level(name: str) -> int | None:
    match = _LEVEL.match(name)
    return int(match.group(2)) + 1 if match else None


def compare_layers(
    candidate: Runner, model: nn.Module, x: np.ndarray, floor_db: float
) -> list[dict[str, Any]]:
    """One row per point for one input ``x`` (B, 3, H, W); ``candidate`` must be active.

    Raises ValueError when the candidate's graph has a different number of convolutions.
    """
    names = conv_order(model)
    bounds = decoder_bounds(names)
    features_of = {first: level for level, (first, _) in bounds.items()}
    residual_of = {last: level for level, (_, last) in bounds.items()}
    with TorchRunner(model, device="cpu", precision="fp32", name="reference") as reference:
        truth = reference.mark_outputs(x, features_of)
    got = candidate.mark_outputs(x, features_of)
    if len(got.conv_outputs) != len(truth.conv_outputs):
        raise ValueError(f"{candidate.name} ran {len(got.conv_outputs)} convolutions, the reference "
                         f"{len(truth.conv_outputs)}: its points cannot be matched one to one")
    tolerance = Tolerance(min_psnr_db=floor_db)
    rows: list[dict[str, Any]] = []

    def add(point: str, kind: str, level: int | None, index: int, out: np.ndarray, ref: np.ndarray,
            runtime_name: str | None) -> None:
        data_range = float(ref.max() - ref.min()) or 1.0
        comparison = compare_outputs(out, ref, tolerance, data_range=data_range)
        rows.append({"point": point, "kind": kind, "level": level, "conv_index": index,
                     "runtime_name": runtime_name, "shape": list(ref.shape), "data_range": data_range,
                     **comparison.to_dict()})

    for index, name in enumerate(truth.conv_names):
        if index in features_of:
            level = features_of[index]
            add(f"level {level} features (decoder input)", "features", level, index, got.conv_inputs[index],
                truth.conv_inputs[index], None)
        kind = "residual" if index in residual_of else "conv"
        runtime_name = got.conv_names[index] if index < len(got.conv_names) else None
        expected = truth.conv_outputs[index]
        bias = model.get_submodule(name).bias
        if got.without_bias and bias is not None:  # OpenVINO's convolution output comes before its bias add
            expected = expected - bias.detach().float().numpy().reshape(1, -1, 1, 1)
        add(name, kind, _level(name), index, got.conv_outputs[index], expected, runtime_name)
    return rows


def first_under(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The first point (execution order) under its floor, or None."""
    return next((row for row in rows if not row["passed"]), None)


def run_layers(
    runners: Sequence[tuple[dict[str, Any], Runner]],
    model: nn.Module,
    inputs: Sequence[tuple[str, np.ndarray]],
    min_psnr_db: float | None = None,
    progress: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Per (runner, input): ``{**base, input, floor_db, first_under, points: [...]}`` (or an error row)."""
    results: list[dict[str, Any]] = []
    for base, runner in runners:
        floor = point_floor(runner.precision, min_psnr_db)
        try:
            runner.activate()
        except Exception as exc:  # noqa: BLE001 - e.g. no such CPU support, found out when loading
            status = "skipped" if isinstance(exc, RuntimeUnavailable) else "error"
            results.append({**base, "input": "-", "status": status, "reason": first_line(exc)})
            continue
        try:
            for label, x in inputs:
                progress(f"layers {runner.name} on {label}")
                try:
                    points = compare_layers(runner, model, x, floor)
                except Exception as exc:  # noqa: BLE001 - one runtime's failure must not hide the others
                    status = "skipped" if isinstance(exc, RuntimeUnavailable) else "error"
                    results.append({**base, "input": label, "status": status, "reason": first_line(exc)})
                    continue
                first = first_under(points)
                results.append({**base, "input": label, "status": "ok", "floor_db": floor,
                                "first_under": first["point"] if first else None, "points": points})
        finally:
            runner.deactivate()
    return results


def layers_markdown(results: Sequence[dict[str, Any]]) -> str:
    """One table per (runner, input); the first point under the floor in bold."""
    parts = []
    for result in results:
        title = f"### {result['runner']} on {result['input']}"
        if result["status"] != "ok":
            parts.append(f"{title}\n\n{result['status']}: {result.get('reason', '')}\n")
            continue
        first = result["first_under"]
        lines = [title, "", f"Floor {result['floor_db']:g} dB per point (PSNR over the reference point's range); "
                 f"first point under it: {f'**{first}**' if first else 'none'}.", "",
                 "| # | point | kind | PSNR dB | max abs | p99 abs | median abs | rel err |",
                 "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
        for number, point in enumerate(result["points"]):
            name = f"**{point['point']}**" if point["point"] == first else point["point"]
            psnr = point["psnr_db"]
            lines.append(f"| {number} | {name} | {point['kind']} | {'inf' if math.isinf(psnr) else f'{psnr:.2f}'} | "
                         f"{point['max_abs']:.2e} | {point['p99_abs']:.2e} | {point['median_abs']:.2e} | "
                         f"{point['rel_err']:.2e} |")
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def run_layers_for_specs(
    specs: Sequence[RunnerSpec],
    cache: ArtifactCache,
    batch: int,
    height: int,
    width: int,
    machine: dict[str, Any],
    frames: Sequence[tuple[str, np.ndarray]] | None = None,
    threads: int | None = None,
    min_psnr_db: float | None = None,
    progress: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """:func:`run_layers` for each spec that can run here, on ``frames`` or on the inputs parity
    judges its precision by (:func:`export.verify.inputs_for`); skipped and failed specs get a row."""
    results: list[dict[str, Any]] = []
    if frames is not None:
        height, width = frames[0][1].shape[-2:]
    for spec in specs:
        base = {"runtime": spec.runtime, "runner": spec.label, "device": spec.device, "precision": spec.precision,
                "batch": batch, "height": height, "width": width, "model": cache.model.config.name,
                "weights": cache.weights, "machine": machine}
        try:
            runner, _ = make_runner(spec, cache, batch, height, width, threads=threads)
        except RuntimeUnavailable as exc:
            results.append({**base, "input": "-", "status": "skipped", "reason": str(exc)})
            continue
        except Exception as exc:  # noqa: BLE001 - one broken runtime must not hide the others
            results.append({**base, "input": "-", "status": "error", "reason": first_line(exc)})
            continue
        inputs = frames if frames is not None else inputs_for(spec.precision, batch, height, width)
        results += run_layers([(base, runner)], cache.model, inputs, min_psnr_db, progress)
    return results
