"""int8 OpenVINO IR by NNCF that keeps the int8 quality target (PSNR against the fp32 output).

What costs quality in DMPHN (measured on the authors' GoPro DMPHN-1-2-4-8, their four test
frames cropped to 352x640, 2-core AMD EPYC, 2026-11-26; see the 720p report's README):
plain NNCF post-training quantization gives 32.5-34.6 dB. Two things carry most of the error:

* the residual adds and the level joins (``image + decoded``, ``features + features``):
  NNCF's CPU preset quantizes both inputs of every Add, so the float residual stream is
  rounded to 8 bits some 60 times over (keeping them float: 35.1-36.7 dB);
* the convolutions that read or write 3-channel image space: the first convolution of each
  encoder and the last of each decoder (3 <-> 32 channels: 0.7% of the multiply-adds).

Keeping both float gives 40.3-41.5 dB at 1.5x the fp32 speed on that CPU (without bias
correction, which NNCF applies by default and which cost 0.3-0.5 dB here: 40.8-41.7 dB).

Calibration runs on a model with dynamic H and W at a small shape
(:data:`export.calibration.CALIBRATION_SHAPE`, which says why); the quantized model is then
fixed to the export shape.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from dmphn_core.model import IMAGE_CHANNELS

from .calibration import check_keep_float

#: op types NNCF leaves in float: the residual adds and the joins between levels
FLOAT_OP_TYPES = ("Add",)
#: PSNR (dB) a perfect match counts as in the accuracy metric (it must be finite)
PSNR_CAP_DB = 100.0


def image_space_convolutions(model) -> list[str]:
    """Names of the convolutions of an ``ov.Model`` that read or write 3 channels (image space)."""
    names = []
    for op in model.get_ordered_ops():
        if op.get_type_name() not in ("Convolution", "ConvolutionBackpropData"):
            continue
        shape = op.input(1).get_partial_shape()  # Convolution: (out, in, kh, kw); BackpropData: (in, out, ...)
        if shape.rank.is_static and shape.rank.get_length() >= 2 and IMAGE_CHANNELS in (
            shape[0].get_length() if shape[0].is_static else None,
            shape[1].get_length() if shape[1].is_static else None,
        ):
            names.append(op.get_friendly_name())
    return names


def float_convolutions(model) -> list[str]:
    """Convolutions of a quantized ``ov.Model`` whose weights are not int8 (no dequantizing Multiply)."""
    names = []
    for op in model.get_ordered_ops():
        if op.get_type_name() in ("Convolution", "ConvolutionBackpropData"):
            if op.input_value(1).get_node().get_type_name() not in ("Multiply", "FakeQuantize"):
                names.append(op.get_friendly_name())
    return names


def compile_f32(model, threads: int | None = None):
    import openvino as ov

    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    return ov.Core().compile_model(model, "CPU", config)


def outputs(model, inputs: list[np.ndarray], threads: int | None = None) -> list[np.ndarray]:
    compiled = compile_f32(model, threads)
    return [np.array(compiled(x)[compiled.output(0)], dtype=np.float32) for x in inputs]


def mean_psnr(outputs_: list[np.ndarray], references: list[np.ndarray]) -> float:
    """PSNR of the mean squared error over all pairs (capped): one number for a set of images."""
    mse = float(np.mean([np.mean((o.astype(np.float64) - r.astype(np.float64)) ** 2)
                         for o, r in zip(outputs_, references)]))
    return PSNR_CAP_DB if mse == 0.0 else min(PSNR_CAP_DB, 10.0 * math.log10(1.0 / mse))


def quantize_int8(
    model,
    calibration: list[np.ndarray],
    validation: list[np.ndarray],
    *,
    keep_float: str = "auto",
    accuracy_control: bool = False,
    min_psnr_db: float = 40.0,
    max_layers_reverted: int | None = None,
) -> tuple[Any, dict[str, Any]]:
    """NNCF int8 of an ``ov.Model``; returns (quantized model, info).

    ``keep_float``: ``"auto"`` keeps the Adds and the image-space convolutions float (see the
    module docstring); ``"none"`` is NNCF's plain post-training quantization of everything.
    ``validation``: inputs (not calibration images) the result is measured on against the float
    model; with ``accuracy_control``, when that misses ``min_psnr_db``, NNCF's accuracy control
    puts more layers back to float on them (at this, the calibration, shape).
    """
    import nncf

    check_keep_float(keep_float)
    nncf.set_log_level(logging.ERROR)  # NNCF logs progress bars and INFO lines by default
    names = image_space_convolutions(model) if keep_float == "auto" else []
    types = list(FLOAT_OP_TYPES) if keep_float == "auto" else []
    info: dict[str, Any] = {
        "tool": "nncf", "version": nncf.__version__, "calibration_batches": len(calibration),
        "calibration_shape": list(calibration[0].shape), "preset": "mixed", "keep_float": keep_float,
        "float_op_types": types, "accuracy_control": accuracy_control, "min_psnr_db": min_psnr_db,
    }
    references = outputs(model, validation)
    quantized = _quantize(model, calibration, names, types, info)
    psnr = mean_psnr(outputs(quantized, validation), references)
    info["validation_psnr_db"] = info["calibration_psnr_db"] = psnr
    info["accuracy_control_ran"] = False
    if accuracy_control and psnr < min_psnr_db:
        quantized = _with_accuracy_control(model, calibration, validation, references, names, types,
                                           min_psnr_db, max_layers_reverted)
        info["accuracy_control_ran"] = True
        info["psnr_before_accuracy_control_db"] = psnr
        info["validation_psnr_db"] = info["calibration_psnr_db"] = mean_psnr(outputs(quantized, validation), references)
    info["float_convolutions"] = float_convolutions(quantized)
    info["int8_convolutions"] = sum(1 for op in quantized.get_ops()
                                    if op.get_type_name() in ("Convolution", "ConvolutionBackpropData")
                                    ) - len(info["float_convolutions"])
    info["fake_quantize_nodes"] = fake_quantize_count(quantized)
    return quantized, info


def _options(names: list[str], types: list[str], subset: int) -> dict[str, Any]:
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters

    options: dict[str, Any] = {
        # MIXED: symmetric weights, asymmetric activations (the decoders' outputs are not centred on 0)
        "preset": nncf.QuantizationPreset.MIXED, "subset_size": subset, "target_device": nncf.TargetDevice.CPU,
        # bias correction moved the authors' model 0.3-0.5 dB further from fp32 (2026-11-26)
        "advanced_parameters": AdvancedQuantizationParameters(disable_bias_correction=True),
    }
    if names or types:
        options["ignored_scope"] = nncf.IgnoredScope(names=names, types=types, validate=False)
    return options


def _quantize(model, calibration, names, types, info) -> Any:
    import nncf

    info["bias_correction"] = False
    return nncf.quantize(model, nncf.Dataset(calibration), **_options(names, types, len(calibration)))


def _with_accuracy_control(model, calibration, validation, references, names, types, min_psnr_db, max_layers_reverted):
    import nncf
    from nncf.parameters import DropType
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

    pairs = list(zip(validation, references))

    def metric(compiled, items) -> float:
        return mean_psnr([np.asarray(compiled(x)[compiled.output(0)]) for x, _ in items], [ref for _, ref in items])

    restorer = (AdvancedAccuracyRestorerParameters() if max_layers_reverted is None
                else AdvancedAccuracyRestorerParameters(max_num_iterations=max_layers_reverted))
    options = _options(names, types, len(calibration))
    return nncf.quantize_with_accuracy_control(
        model, calibration_dataset=nncf.Dataset(calibration), validation_dataset=nncf.Dataset(pairs),
        validation_fn=metric, max_drop=PSNR_CAP_DB - min_psnr_db, drop_type=DropType.ABSOLUTE,
        advanced_accuracy_restorer_parameters=restorer, advanced_quantization_parameters=options.pop("advanced_parameters"),
        **options,
    )


def fake_quantize_count(model) -> int:
    """FakeQuantize nodes in an ``ov.Model`` (0 for a float IR)."""
    return sum(1 for op in model.get_ops() if op.get_type_name() == "FakeQuantize")
