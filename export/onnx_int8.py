"""int8 ONNX for ONNX Runtime on the CPU: QDQ static quantization of the project's static ONNX.

Steps, after ONNX Runtime's own recipe: ``quant_pre_process`` (shape inference and graph
optimisation, so quantization sees fused Conv+Relu), then ``quantize_static`` in QDQ format
with per-channel int8 weights and uint8 activations whose ranges come from MinMax calibration
on :func:`export.calibration.calibration_batches`. The metadata blob is carried over with
``precision`` set to ``int8``; the runner runs such a file only at precision int8.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from dmphn_core.artifact import INPUT_NAME, METADATA_KEY, metadata_json
from dmphn_core.errors import DMPHNError
from dmphn_core.fileio import write_bytes_atomic

from .calibration import DEFAULT_SAMPLES, calibration_batches
from .to_onnx import read_onnx_metadata

#: Ops ONNX Runtime inserts for QDQ quantization; their presence marks an int8 graph.
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})


def is_quantized(model: onnx.ModelProto) -> bool:
    return any(node.op_type in QDQ_OPS for node in model.graph.node)


def _reader(batches: list[np.ndarray]):
    """ONNX Runtime's CalibrationDataReader over a list of (B, 3, H, W) arrays."""
    from onnxruntime.quantization import CalibrationDataReader

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self._items = iter([{INPUT_NAME: batch} for batch in batches])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._items, None)

    return Batches()


def quantize_onnx_int8(
    fp32_path: str | os.PathLike,
    path: str | os.PathLike,
    *,
    calibration_dir: str | os.PathLike | None = None,
    calibration_samples: int = DEFAULT_SAMPLES,
) -> dict[str, Any]:
    """Write the int8 QDQ model of the static fp32 ONNX at ``fp32_path`` to ``path``; returns info."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source = onnx.load(str(fp32_path))
    metadata = read_onnx_metadata(source)
    if metadata is None:
        raise DMPHNError(f"{fp32_path} has no DMPHN metadata: quantize an ONNX written by dmphn-export onnx")
    batch, _, height, width = metadata["export_shape"]
    if any(isinstance(dim, str) for dim in metadata["input"]["shape"]):
        raise DMPHNError("int8 quantization needs a static-shape ONNX (export without --dynamic-batch/--dynamic-hw)")
    calibration = calibration_batches(batch, height, width, calibration_dir, calibration_samples)
    with tempfile.TemporaryDirectory(prefix="dmphn-qdq-") as scratch:
        prepared, quantized = Path(scratch) / "prepared.onnx", Path(scratch) / "int8.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared), str(quantized), _reader(calibration), quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
            calibrate_method=CalibrationMethod.MinMax,
        )
        model = onnx.load(str(quantized))
    info = {"tool": "onnxruntime.quantization", "format": "QDQ", "weights": "int8 per channel",
            "activations": "uint8 per tensor", "calibration": "MinMax", "calibration_batches": len(calibration),
            "calibration_source": str(calibration_dir) if calibration_dir else "camera-shake views of bundled photos"}
    metadata = {**metadata, "precision": "int8", "quantization": info}
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, {METADATA_KEY: metadata_json(metadata)})
    write_bytes_atomic(path, model.SerializeToString())
    return info
