"""int8 ONNX for ONNX Runtime on the CPU: QDQ static quantization of the project's static ONNX.

Steps, after ONNX Runtime's own recipe: ``quant_pre_process`` (shape inference and graph
optimisation, so quantization sees fused Conv+Relu), then ``quantize_static`` in QDQ format
with per-channel int8 weights and uint8 activations calibrated on
:func:`export.calibration.calibration_batches`. The metadata blob is carried over with
``precision`` set to ``int8``; the runner runs such a file only at precision int8.

What is quantized follows :mod:`export.ov_int8`'s recipe as far as ONNX Runtime allows
(``keep_float="auto"``, the default): ONNX Runtime is asked to quantize the convolutions only
(``op_types_to_quantize``), not the image-space ones (3 channels in or out: the first of each
encoder, the last of each decoder), and each activation range is the mean of the calibration
batches' min/max rather than the extremes over all of them. In QDQ form the tensors between
convolutions still carry quantize/dequantize pairs, so unlike in the OpenVINO IR the adds are
not guaranteed to compute in float. Measured on the authors' DMPHN-1-2-4-8, 9 calibration views, four 128x256
crops of their GoPro frames, PSNR vs fp32 (2-core EPYC, 2026-11-26): everything quantized with
global min/max (``keep_float="none"``, the previous export) 27.1 / 32.0 / 32.0 / 28.2 dB;
convolutions only, image-space ones float 36.2 / 37.9 / 35.9 / 35.1 dB; plus mean ranges 39.3 /
40.6 / 39.8 / 38.9 dB (310 ms per crop at 2 threads, the fp32 graph 397 ms).
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
#: The op types the default recipe asks ONNX Runtime to quantize.
QUANTIZED_OP_TYPES = ("Conv", "ConvTranspose")
IMAGE_CHANNELS = 3


def is_quantized(model: onnx.ModelProto) -> bool:
    return any(node.op_type in QDQ_OPS for node in model.graph.node)


def image_space_convolutions(model: onnx.ModelProto) -> list[str]:
    """Names of the Conv/ConvTranspose nodes whose weights read or write 3 channels (image space)."""
    shapes = {init.name: list(init.dims) for init in model.graph.initializer}
    return [node.name for node in model.graph.node
            if node.op_type in QUANTIZED_OP_TYPES and len(node.input) > 1
            and IMAGE_CHANNELS in shapes.get(node.input[1], [])[:2]]


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
    keep_float: str = "auto",
) -> dict[str, Any]:
    """Write the int8 QDQ model of the static fp32 ONNX at ``fp32_path`` to ``path``; returns info.

    ``keep_float``: ``"auto"``, the recipe in the module docstring; ``"none"``: every op ONNX
    Runtime can quantize, with global min/max ranges (its plain post-training quantization).
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source = onnx.load(str(fp32_path))
    metadata = read_onnx_metadata(source)
    if metadata is None:
        raise DMPHNError(f"{fp32_path} has no DMPHN metadata: quantize an ONNX written by dmphn-export onnx")
    batch, _, height, width = metadata["export_shape"]
    if any(isinstance(dim, str) for dim in metadata["input"]["shape"]):
        raise DMPHNError("int8 quantization needs a static-shape ONNX (export without --dynamic-batch/--dynamic-hw)")
    if keep_float not in ("auto", "none"):
        raise DMPHNError(f"keep_float must be 'auto' or 'none', got {keep_float!r}")
    calibration = calibration_batches(batch, height, width, calibration_dir, calibration_samples)
    recipe = keep_float == "auto"
    with tempfile.TemporaryDirectory(prefix="dmphn-qdq-") as scratch:
        prepared, quantized = Path(scratch) / "prepared.onnx", Path(scratch) / "int8.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        float_convolutions = image_space_convolutions(onnx.load(str(prepared))) if recipe else []
        scope: dict[str, Any] = {"op_types_to_quantize": list(QUANTIZED_OP_TYPES),
                                 "nodes_to_exclude": float_convolutions} if recipe else {}
        quantize_static(
            str(prepared), str(quantized), _reader(calibration), quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
            calibrate_method=CalibrationMethod.MinMax, extra_options={"CalibMovingAverage": recipe}, **scope,
        )
        model = onnx.load(str(quantized))
    info = {"tool": "onnxruntime.quantization", "format": "QDQ", "weights": "int8 per channel",
            "activations": "uint8 per tensor", "keep_float": keep_float,
            "calibration": "MinMax, mean of the batches' ranges" if recipe else "MinMax, global ranges",
            "quantized_op_types": list(QUANTIZED_OP_TYPES) if recipe else "all ONNX Runtime quantizes",
            "float_convolutions": float_convolutions, "calibration_batches": len(calibration),
            "calibration_source": str(calibration_dir) if calibration_dir else "camera-shake views of bundled photos"}
    metadata = {**metadata, "precision": "int8", "quantization": info}
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, {METADATA_KEY: metadata_json(metadata)})
    write_bytes_atomic(path, model.SerializeToString())
    return info
