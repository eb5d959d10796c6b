"""int8 ONNX for ONNX Runtime on the CPU: QDQ static quantization of the project's static ONNX.

Steps, after ONNX Runtime's own recipe: ``quant_pre_process`` (shape inference and graph
optimisation, so quantization sees fused Conv+Relu), then ``quantize_static`` in QDQ format
with per-channel int8 weights and uint8 activations calibrated on
:func:`export.calibration.calibration_batches`. The metadata blob is carried over with
``precision`` set to ``int8``; the runner runs such a file only at precision int8.

What is quantized (``keep_float="auto"``, the default) follows :mod:`export.ov_int8`'s recipe as
far as ONNX Runtime allows, and what its CPU provider can run in int8:

* only the inputs of the ``Conv`` nodes (``op_types_to_quantize`` Conv, their outputs excluded),
  so the residual adds and level joins read float tensors where they can;
* not the image-space convolutions (3 channels in or out: the first of each encoder, the last
  of each decoder);
* not the ``ConvTranspose`` nodes: the CPU provider has no int8 transposed convolution, so a
  quantized input only added a DequantizeLinear and its error in front of a float kernel;
* activation ranges by the 99.999th percentile of the calibration histograms
  (``CalibrationMethod.Percentile``), not the extremes (MinMax).

Measured on the authors' DMPHN-1-2-4-8, PSNR vs ONNX Runtime fp32 on 352x640 copies (bicubic
resize, rows 4-355) of their GoPro frames 000001 / 000007 / 000013 / 000019, 9 calibration views
at 128x256 (2-core AMX Xeon, 2026-12-06): this recipe 43.45 / 43.33 / 42.77 / 42.09 dB (the whole
720x1280 frames, vs PyTorch fp32: 41.64 / 43.00 / 41.60 / 40.14); with MinMax ranges 41.83 / 42.45
/ 41.83 / 40.01; MinMax with the transposed convolutions quantized too (the recipe before
2026-12-06) 41.68 / 42.22 / 41.67 / 40.12; the 99.99th percentile clips (44.61 / 40.32 / 38.64 /
41.39). Quantizing the convolution outputs as well would let ONNX Runtime run every convolution
in int8 (it fuses DQ -> Conv -> Q into QLinearConv only when the output is quantized: 1.66x its
fp32 speed here) but scores 37.7-39.9 dB with the percentile ranges (35.9-38.2 with MinMax),
under the int8 bar; reading the skip connections from the float tensor instead of the
dequantized one lost 2.5 dB (39.2 / 39.4 / 39.1 / 37.2). So at >= 40 dB half of the
convolutions (each residual block's second, feeding a float add) run float on dequantized
inputs, and ONNX Runtime int8 is no faster than its fp32 on this model (docs/explain.md).
Everything quantized (``keep_float="none"``, ONNX Runtime's plain post-training quantization with
MinMax ranges, the export before 2026-11-26): 29.3 / 30.0 dB at 352x640.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from dmphn_core.artifact import INPUT_NAME, METADATA_KEY, metadata_json, onnx_model_metadata
from dmphn_core.errors import DMPHNError
from dmphn_core.fileio import write_bytes_atomic
from dmphn_core.model import IMAGE_CHANNELS

from .calibration import (
    ACTIVATION_PERCENTILE,
    DEFAULT_SAMPLES,
    calibration_batches,
    calibration_shape,
    check_keep_float,
)

#: Ops ONNX Runtime inserts for QDQ quantization; their presence marks an int8 graph.
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
#: The op types the default recipe asks ONNX Runtime to quantize (no ConvTranspose: no CPU int8 kernel).
QUANTIZED_OP_TYPES = ("Conv",)
#: The convolution op types (image-space ones are found among these).
CONVOLUTION_OP_TYPES = ("Conv", "ConvTranspose")


def is_quantized(model: onnx.ModelProto) -> bool:
    return any(node.op_type in QDQ_OPS for node in model.graph.node)


def image_space_convolutions(model: onnx.ModelProto) -> list[str]:
    """Names of the Conv/ConvTranspose nodes whose weights read or write 3 channels (image space)."""
    shapes = {init.name: list(init.dims) for init in model.graph.initializer}
    return [node.name for node in model.graph.node
            if node.op_type in CONVOLUTION_OP_TYPES and len(node.input) > 1
            and IMAGE_CHANNELS in shapes.get(node.input[1], [])[:2]]


def _fix_shape(model: onnx.ModelProto, shape: list[int]) -> None:
    """Make the dynamic input and output dims of ``model`` the static ``shape`` (B, 3, H, W)."""
    for value in (*model.graph.input, *model.graph.output):
        for dim, size in zip(value.type.tensor_type.shape.dim, shape):
            dim.Clear()
            dim.dim_value = size


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
    calibration_graph: str | os.PathLike | None = None,
    calibration_hw: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Write the int8 QDQ model of the static fp32 ONNX at ``fp32_path`` to ``path``; returns info.

    ``keep_float``: ``"auto"``, the recipe in the module docstring; ``"none"``: every op ONNX
    Runtime can quantize, with global min/max ranges (its plain post-training quantization).
    ``calibration_graph``: the same model exported with dynamic H and W. When given, that graph
    is quantized, calibrated at ``calibration_hw`` (default
    :func:`export.calibration.calibration_shape`), then fixed to the static shape of
    ``fp32_path``: ONNX Runtime's calibration of the static graph itself needs all of its
    activations at once (over 24 GB at 720x1280).
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source = onnx.load(str(fp32_path))
    metadata = onnx_model_metadata(source)
    if metadata is None:
        raise DMPHNError(f"{fp32_path} has no DMPHN metadata: quantize an ONNX written by dmphn-export onnx")
    batch, _, height, width = metadata["export_shape"]
    if any(isinstance(dim, str) for dim in metadata["input"]["shape"]):
        raise DMPHNError("int8 quantization needs a static-shape ONNX (export without --dynamic-batch/--dynamic-hw)")
    check_keep_float(keep_float)
    calib_h, calib_w = height, width
    if calibration_graph is not None:
        dynamic = onnx_model_metadata(onnx.load(str(calibration_graph)))
        dynamic_hw = dynamic is not None and all(isinstance(dim, str) for dim in dynamic["input"]["shape"][2:])
        if not dynamic_hw or dynamic["config"] != metadata["config"]:
            raise DMPHNError(f"{calibration_graph} is not this model with dynamic H and W (dmphn-export onnx --dynamic-hw)")
        calib_h, calib_w = calibration_hw or calibration_shape(height, width, tuple(metadata["size_block_hw"]))
    calibration = calibration_batches(batch, calib_h, calib_w, calibration_dir, calibration_samples)
    recipe = keep_float == "auto"
    with tempfile.TemporaryDirectory(prefix="dmphn-qdq-") as scratch:
        prepared, quantized = Path(scratch) / "prepared.onnx", Path(scratch) / "int8.onnx"
        quant_pre_process(str(calibration_graph or fp32_path), str(prepared), skip_symbolic_shape=True)
        float_convolutions = image_space_convolutions(onnx.load(str(prepared))) if recipe else []
        scope: dict[str, Any] = {"op_types_to_quantize": list(QUANTIZED_OP_TYPES),
                                 "nodes_to_exclude": float_convolutions} if recipe else {}
        extra = {"OpTypesToExcludeOutputQuantization": list(QUANTIZED_OP_TYPES),
                 "CalibPercentile": ACTIVATION_PERCENTILE} if recipe else {}
        with contextlib.redirect_stdout(io.StringIO()):  # the percentile calibrator prints its progress
            quantize_static(
                str(prepared), str(quantized), _reader(calibration), quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                calibrate_method=CalibrationMethod.Percentile if recipe else CalibrationMethod.MinMax,
                extra_options=extra, **scope,
            )
        model = onnx.load(str(quantized))
    if calibration_graph is not None:
        _fix_shape(model, [batch, 3, height, width])
    info = {"tool": "onnxruntime.quantization", "format": "QDQ", "weights": "int8 per channel",
            "activations": "uint8 per tensor", "keep_float": keep_float,
            "calibration": f"Percentile {ACTIVATION_PERCENTILE}" if recipe else "MinMax",
            "quantized": "Conv inputs" if recipe else "all ONNX Runtime quantizes",
            "float_convolutions": float_convolutions, "calibration_batches": len(calibration),
            "calibration_shape": [batch, 3, calib_h, calib_w],
            "calibration_source": str(calibration_dir) if calibration_dir else "camera-shake views of bundled photos"}
    metadata = {**metadata, "precision": "int8", "quantization": info}
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, {METADATA_KEY: metadata_json(metadata)})
    write_bytes_atomic(path, model.SerializeToString())
    return info
