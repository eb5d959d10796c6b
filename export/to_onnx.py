"""DMPHN -> ONNX (opset >= 17) with torch.onnx's dynamo exporter, checked, simplified, self-describing.

Static shapes by default: the whole graph is Conv/ConvTranspose/Relu/Add plus the fixed
Reshape/Transpose pairs of the patch split, with no run-time shape arithmetic. With
``dynamic_batch`` the batch axis is free; with ``dynamic_hw`` H and W are free but must
stay multiples of the hierarchy's size block (``model.geometry.size_block``, e.g. 8x16
for 1-2-4-8), because the exported patch split divides H and W by the patch grid.

The graph is simplified with onnxslim, and the simplified graph is kept only if ONNX
Runtime gives the same output as the unsimplified one (max |diff| <= ``SIMPLIFY_MAX_ABS``).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import tempfile
import warnings
from collections import Counter
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from dmphn_core.artifact import (
    INPUT_NAME,
    METADATA_KEY,
    OUTPUT_NAME,
    artifact_metadata,
    metadata_json,
    onnx_model_metadata,
)
from dmphn_core.errors import DMPHNError, exception_line
from dmphn_core.fileio import write_bytes_atomic
from dmphn_core.model import DMPHN

from .exporter import Exporter

MIN_OPSET = 17
DEFAULT_OPSET = 18
#: Simplification must not move the output by more than this (float rounding is ~1e-7).
SIMPLIFY_MAX_ABS = 1e-5
#: Ops that read a tensor's shape at run time; every dynamic-shape computation starts at one.
SHAPE_SOURCES = frozenset({"Shape", "Size"})


def _package_version(name: str) -> str | None:
    try:
        return importlib_metadata.version(name)
    except importlib_metadata.PackageNotFoundError:
        return None


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    """Nodes of the main graph by op type, most frequent first."""
    return dict(Counter(node.op_type for node in model.graph.node).most_common())


def dynamic_shape_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """Nodes that compute on run-time shapes: Shape/Size and the arithmetic fed only by them.

    A node counts when at least one input is such a shape value and every other input is
    a constant (initializer or Constant output). Reshape takes data, so it never counts:
    what counts is the Shape->Gather->Concat chain that feeds it.
    """
    graph = model.graph
    constants = {init.name for init in graph.initializer}
    constants.update(out for node in graph.node if node.op_type == "Constant" for out in node.output)
    shape_values: set[str] = set()
    found = []
    for node in graph.node:  # ONNX graphs are topologically sorted
        inputs = [name for name in node.input if name]
        is_shape = node.op_type in SHAPE_SOURCES or (
            any(name in shape_values for name in inputs)
            and all(name in shape_values or name in constants for name in inputs)
        )
        if is_shape:
            shape_values.update(node.output)
            found.append(node)
    return found


def _ort_session(model: onnx.ModelProto):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _ort_run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return _ort_session(model).run([OUTPUT_NAME], {INPUT_NAME: x})[0]


def _simplify(model: onnx.ModelProto) -> onnx.ModelProto:
    """onnxslim's graph simplification (constant folding, dead-node and identity removal)."""
    import onnxslim

    return onnxslim.slim(model)


def _try_simplify(model: onnx.ModelProto, probe: np.ndarray) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """Simplify ``model``; return it unchanged (with the reason) unless ORT parity holds."""
    info: dict[str, Any] = {"tool": "onnxslim", "version": _package_version("onnxslim"), "kept": False}
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # onnxslim prints a summary table
            simplified = _simplify(model)
    except Exception as exc:  # noqa: BLE001 - a failed optional pass keeps the exported graph
        info["reason"] = f"onnxslim failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        return model, info
    info["op_counts"] = op_counts(simplified)
    try:
        max_abs = float(np.abs(_ort_run(simplified, probe) - _ort_run(model, probe)).max())
    except Exception as exc:  # noqa: BLE001
        info["reason"] = f"simplified graph does not run in ONNX Runtime: {type(exc).__name__}"
        return model, info
    info["parity_max_abs"] = max_abs
    if not max_abs <= SIMPLIFY_MAX_ABS:  # also catches NaN
        info["reason"] = f"ORT output moved by {max_abs:.3g} > {SIMPLIFY_MAX_ABS:g}; kept the exported graph"
        return model, info
    info.update(kept=True, reason=f"ORT parity with the exported graph holds (max_abs={max_abs:.3g})")
    return simplified, info


def _dynamic_shapes(model: DMPHN, dynamic_batch: bool, dynamic_hw: bool) -> tuple[dict[int, Any], ...] | None:
    if not (dynamic_batch or dynamic_hw):
        return None
    Dim = torch.export.Dim
    axes: dict[int, Any] = {}
    if dynamic_batch:
        axes[0] = Dim("batch", min=1, max=1024)
    if dynamic_hw:
        # H and W stay multiples of the size block: the patch split divides them exactly.
        bh, bw = model.geometry.size_block
        axes[2] = bh * Dim("height_blocks", min=1, max=8192 // bh)
        axes[3] = bw * Dim("width_blocks", min=1, max=8192 // bw)
    return (axes,)


def _example_shape(model: DMPHN, batch: int, height: int, width: int, dynamic_batch: bool, dynamic_hw: bool):
    """Trace shape: a dynamic axis must not be traced at size 1 (torch.export would specialise it)."""
    bh, bw = model.geometry.size_block
    if dynamic_batch:
        batch = max(batch, 2)
    if dynamic_hw:
        height, width = max(height, 2 * bh), max(width, 2 * bw)
    return batch, height, width


def export_onnx(
    model: DMPHN,
    path: str | os.PathLike,
    *,
    batch: int,
    height: int,
    width: int,
    dynamic_batch: bool = False,
    dynamic_hw: bool = False,
    opset: int = DEFAULT_OPSET,
    simplify: bool = True,
) -> dict[str, Any]:
    """Export ``model`` (input ``blurred`` (B, 3, H, W) -> output ``deblurred``) to one .onnx file.

    Returns the export info (JSON-able); ``log_lines`` is what the CLI prints.
    """
    if opset < MIN_OPSET:
        raise DMPHNError(f"ONNX opset must be >= {MIN_OPSET}, got {opset}")
    if batch < 1:
        raise DMPHNError(f"batch must be at least 1, got {batch}")
    model.geometry.check_size(height, width)
    path = Path(path)

    trace_shape = _example_shape(model, batch, height, width, dynamic_batch, dynamic_hw)
    # Export a float32 CPU copy so the caller's module is never moved or cast.
    params = next(model.parameters())
    source = model if (params.device.type, params.dtype) == ("cpu", torch.float32) else _cpu_copy(model)
    example = torch.rand(*trace_shape[:1], 3, *trace_shape[1:], generator=torch.Generator().manual_seed(0))
    was_training = source.training
    try:
        with torch.inference_mode(False), _quiet_exporter():
            program = torch.onnx.export(
                source.eval(), (example,), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                opset_version=opset, dynamo=True, external_data=False, verbose=False,
                dynamic_shapes=_dynamic_shapes(model, dynamic_batch, dynamic_hw),
            )
    except Exception as exc:  # the exporter raises many kinds; the user gets one line
        first = exception_line(exc)
        raise DMPHNError(f"torch.onnx.export failed for {model.config.name}: {first}") from exc
    finally:
        source.train(was_training)
    exported = program.model_proto

    info: dict[str, Any] = {
        "opset": opset,
        "export_shape": [batch, 3, height, width],
        "trace_shape": [trace_shape[0], 3, *trace_shape[1:]],
        "dynamic_batch": dynamic_batch,
        "dynamic_hw": dynamic_hw,
        "size_block_hw": list(model.geometry.size_block),
        "op_counts_exported": op_counts(exported),
    }
    final = exported
    if simplify:
        probe = torch.rand(*trace_shape[:1], 3, *trace_shape[1:], generator=torch.Generator().manual_seed(1)).numpy()
        final, info["simplify"] = _try_simplify(exported, probe)
    else:
        info["simplify"] = {"kept": False, "reason": "disabled (--no-simplify)"}

    versions = {"onnx": onnx.__version__, "onnxslim": _package_version("onnxslim"), "onnxscript": _package_version("onnxscript")}
    meta = artifact_metadata(
        model.config, batch=batch, height=height, width=width, precision="fp32",
        dynamic_batch=dynamic_batch, dynamic_hw=dynamic_hw,
        onnx={"opset": opset, "simplified": bool(info["simplify"]["kept"]), **versions},
    )
    del final.metadata_props[:]
    onnx.helper.set_model_props(final, {METADATA_KEY: metadata_json(meta)})
    final.doc_string = f"{model.config.name} image deblurring; metadata_props[{METADATA_KEY!r}] describes the I/O"

    try:
        onnx.checker.check_model(final, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise DMPHNError(f"exported ONNX fails onnx.checker: {str(exc).splitlines()[0]}") from exc

    data = final.SerializeToString()
    write_bytes_atomic(path, data)

    dynamic_ops = dynamic_shape_nodes(final)
    info.update(
        op_counts=op_counts(final),
        nodes=len(final.graph.node),
        dynamic_shape_ops=len(dynamic_ops),
        dynamic_shape_op_types=dict(Counter(node.op_type for node in dynamic_ops)),
        file_bytes=len(data),
        versions=versions,
        metadata_key=METADATA_KEY,
    )
    info["log_lines"] = _log_lines(info)
    return info


@contextlib.contextmanager
def _quiet_exporter():
    """Silence the exporter's progress prints, deprecation warnings and optional-op notices.

    The CLI's output is the export summary and the verification; real failures still
    surface as the exception from torch.onnx.export.
    """
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _cpu_copy(model: DMPHN) -> DMPHN:
    import copy

    return copy.deepcopy(model).to("cpu", torch.float32)


def _log_lines(info: dict[str, Any]) -> list[str]:
    shape = "x".join(map(str, info["export_shape"]))
    axes = [name for name, on in (("batch", info["dynamic_batch"]), ("H,W", info["dynamic_hw"])) if on]
    simplify = info["simplify"]
    lines = [
        f"onnx: opset {info['opset']}, input {shape}" + (f" (dynamic {' and '.join(axes)})" if axes else " (static)"),
        f"  nodes: {info['nodes']} " + json.dumps(info["op_counts"]),
        f"  dynamic-shape ops: {info['dynamic_shape_ops']}" + (
            f" {json.dumps(info['dynamic_shape_op_types'])}" if info["dynamic_shape_ops"] else ""),
        (f"  simplify ({simplify.get('tool', 'onnxslim')}): {'kept' if simplify['kept'] else 'not kept'}: "
         f"{simplify.get('reason', '')}"),
        f"  onnx.checker (full_check): ok; {info['file_bytes'] / 2**20:.1f} MiB, one file (no external data)",
    ]
    return lines


def read_onnx_metadata(model: onnx.ModelProto) -> dict[str, Any] | None:
    """The artifact metadata stored by :func:`export_onnx`, or None if the model has none."""
    return onnx_model_metadata(model)


def _build(model: DMPHN, path: Path, *, batch: int, height: int, width: int, device: str, precision: str,
           calibration_dir: str | os.PathLike | None = None, **options: Any) -> dict[str, Any]:
    """A float32 graph traced on the CPU; for int8, its QDQ quantization (:mod:`export.onnx_int8`),
    calibrated through a copy of the graph with dynamic H and W at a small shape."""
    if precision != "int8":
        return export_onnx(model, path, batch=batch, height=height, width=width, **options)
    from .onnx_int8 import quantize_onnx_int8

    with tempfile.TemporaryDirectory(prefix="dmphn-onnx-int8-") as scratch:
        fp32, dynamic = Path(scratch) / "fp32.onnx", Path(scratch) / "fp32_dynamic_hw.onnx"
        info = export_onnx(model, fp32, batch=batch, height=height, width=width, **options)
        export_onnx(model, dynamic, batch=batch, height=height, width=width, dynamic_hw=True)
        return {**info, "int8": quantize_onnx_int8(fp32, path, calibration_dir=calibration_dir, calibration_graph=dynamic)}


EXPORTER = Exporter(format="onnx", runtime="ort", suffix=".onnx", precisions=("fp32", "int8"), devices=("cpu",),
                    build=_build)
