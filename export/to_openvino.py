"""DMPHN -> OpenVINO IR (``.xml`` + ``.bin``), float or int8, with the toolkit's metadata.

The IR is converted from the project's static ONNX (:func:`export.to_onnx.export_onnx`) by
``openvino.convert_model``, so OpenVINO sees the same graph as ONNX Runtime and TensorRT.

Precisions:

* fp32 / bf16: float32 weights. bf16 is not a property of the file: OpenVINO picks it when
  the model is compiled (``INFERENCE_PRECISION_HINT``), so both write the same IR.
* fp16: weights stored as float16 (half the ``.bin``), decompressed when compiled.
* int8: NNCF post-training quantization (FakeQuantize on convolution inputs and weights),
  calibrated on :func:`export.calibration.calibration_batches`. With accuracy control (the
  default) NNCF then puts back to float the layers that cost most, until the output is within
  ``min_psnr_db`` of the float model's output (PSNR against fp32, the same measure as
  :mod:`runtimes.compare`).
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from dmphn_core.artifact import OPENVINO_RT_INFO_KEY, artifact_metadata, metadata_json
from dmphn_core.errors import DMPHNError
from dmphn_core.model import DMPHN

from .calibration import DEFAULT_SAMPLES, calibration_batches
from .exporter import Exporter
from .to_onnx import export_onnx

PRECISIONS = ("fp32", "bf16", "fp16", "int8")
#: PSNR (dB) a perfect match counts as in the accuracy-control metric: it must be finite, and
#: NNCF's allowed drop is measured from it (drop = PSNR_CAP - min_psnr_db).
PSNR_CAP_DB = 100.0


def check_openvino_available(int8: bool = False) -> None:
    try:
        import openvino  # noqa: F401
    except ImportError:
        raise DMPHNError("openvino is not installed (pip install openvino)") from None
    if int8:
        try:
            import nncf  # noqa: F401
        except ImportError:
            raise DMPHNError("int8 export needs NNCF (pip install nncf)") from None


def _psnr_capped(output: np.ndarray, reference: np.ndarray) -> float:
    mse = float(np.mean((output.astype(np.float64) - reference.astype(np.float64)) ** 2))
    return PSNR_CAP_DB if mse == 0.0 else min(PSNR_CAP_DB, 10.0 * math.log10(1.0 / mse))


def _float_outputs(model, inputs: list[np.ndarray]) -> list[np.ndarray]:
    import openvino as ov

    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return [np.array(compiled(x)[compiled.output(0)], dtype=np.float32) for x in inputs]


def quantize_int8(
    model,
    calibration: list[np.ndarray],
    *,
    accuracy_control: bool = True,
    min_psnr_db: float = 40.0,
    max_layers_reverted: int | None = None,
) -> tuple[Any, dict[str, Any]]:
    """NNCF post-training int8 quantization of an ``ov.Model``; returns (model, info)."""
    import nncf
    from nncf.parameters import DropType

    nncf.set_log_level(logging.ERROR)  # NNCF logs progress bars and INFO lines by default
    info: dict[str, Any] = {"tool": "nncf", "version": nncf.__version__, "calibration_batches": len(calibration),
                            "preset": "mixed", "accuracy_control": accuracy_control}
    # MIXED: symmetric weights, asymmetric activations (the decoders' outputs are not centred on 0)
    options: dict[str, Any] = {"preset": nncf.QuantizationPreset.MIXED, "subset_size": len(calibration),
                               "target_device": nncf.TargetDevice.CPU}
    if accuracy_control:
        references = _float_outputs(model, calibration)
        pairs = list(zip(calibration, references))

        def mean_psnr(compiled, items) -> float:
            psnrs = [_psnr_capped(np.asarray(compiled(x)[compiled.output(0)]), ref) for x, ref in items]
            return float(np.mean(psnrs))

        def run(advanced=None):
            return nncf.quantize_with_accuracy_control(
                model,
                calibration_dataset=nncf.Dataset(pairs, lambda item: item[0]),
                validation_dataset=nncf.Dataset(pairs),
                validation_fn=mean_psnr,
                max_drop=PSNR_CAP_DB - min_psnr_db,
                drop_type=DropType.ABSOLUTE,
                advanced_accuracy_restorer_parameters=_restorer_parameters(max_layers_reverted),
                advanced_quantization_parameters=advanced, **options,
            )
    else:
        def run(advanced=None):
            return nncf.quantize(model, nncf.Dataset(calibration), advanced_parameters=advanced, **options)

    try:
        quantized = run()
        info["bias_correction"] = True
    except ValueError as exc:
        # NNCF's fast bias correction cannot reshape some bias constants (seen with random-weight
        # checkpoints); quantize without it rather than fail, and record that it was skipped.
        from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters

        quantized = run(AdvancedQuantizationParameters(disable_bias_correction=True))
        info["bias_correction"] = False
        info["bias_correction_skipped"] = f"NNCF fast bias correction failed: {str(exc).splitlines()[0]}"
    info["fake_quantize_nodes"] = fake_quantize_count(quantized)
    if not accuracy_control:
        return quantized, info
    info["min_psnr_db"] = min_psnr_db
    info["calibration_psnr_db"] = mean_psnr(_compile_f32(quantized), pairs)
    return quantized, info


def _restorer_parameters(max_layers_reverted: int | None):
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

    if max_layers_reverted is None:
        return AdvancedAccuracyRestorerParameters()
    return AdvancedAccuracyRestorerParameters(max_num_iterations=max_layers_reverted)


def _compile_f32(model):
    import openvino as ov

    return ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})


def fake_quantize_count(model) -> int:
    """FakeQuantize nodes in an ``ov.Model`` (0 for a float IR)."""
    return sum(1 for op in model.get_ops() if op.get_type_name() == "FakeQuantize")


def export_openvino(
    model: DMPHN,
    path: str | os.PathLike,
    *,
    batch: int,
    height: int,
    width: int,
    precision: str = "fp32",
    calibration_dir: str | os.PathLike | None = None,
    calibration_samples: int = DEFAULT_SAMPLES,
    accuracy_control: bool = True,
    min_psnr_db: float = 40.0,
    max_layers_reverted: int | None = None,
    weights_path: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Write the IR: ``path`` (.xml) and ``weights_path`` (default: ``path`` with ``.bin``).

    Returns the export info (JSON-able); ``log_lines`` is what the CLI prints.
    """
    import openvino as ov

    if precision not in PRECISIONS:
        raise DMPHNError(f"unknown OpenVINO export precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    check_openvino_available(int8=precision == "int8")
    path = Path(path)
    weights_path = Path(weights_path) if weights_path is not None else path.with_suffix(".bin")
    with tempfile.TemporaryDirectory(prefix="dmphn-ov-") as scratch:
        onnx_path = Path(scratch) / "model.onnx"
        export_onnx(model, onnx_path, batch=batch, height=height, width=width)
        ov_model = ov.convert_model(str(onnx_path))
    info: dict[str, Any] = {"openvino": ov.__version__, "precision": precision, "source": "static ONNX"}
    lines = [f"converted static ONNX {batch}x3x{height}x{width} to OpenVINO {ov.__version__}"]
    if precision == "int8":
        calibration = calibration_batches(batch, height, width, calibration_dir, calibration_samples)
        ov_model, quant_info = quantize_int8(
            ov_model, calibration, accuracy_control=accuracy_control, min_psnr_db=min_psnr_db,
            max_layers_reverted=max_layers_reverted,
        )
        quant_info["calibration_source"] = str(calibration_dir) if calibration_dir else "camera-shake views of bundled photos"
        info["quantization"] = quant_info
        lines.append(
            f"int8: NNCF {quant_info['version']} on {len(calibration)} calibration batch(es) from "
            f"{quant_info['calibration_source']}"
            + f", {quant_info['fake_quantize_nodes']} FakeQuantize nodes"
            + (f"; accuracy control: calibration PSNR vs fp32 {quant_info['calibration_psnr_db']:.2f} dB"
               if accuracy_control else "")
        )
    metadata = artifact_metadata(model.config, batch=batch, height=height, width=width, precision=precision,
                                 openvino=ov.__version__, **({"quantization": info["quantization"]} if "quantization" in info else {}))
    ov_model.set_rt_info(metadata_json(metadata), list(OPENVINO_RT_INFO_KEY))
    _save_pair(ov_model, path, weights_path, compress_to_fp16=precision == "fp16")
    info["log_lines"] = lines
    return info


def _save_pair(ov_model, xml_path: Path, bin_path: Path, *, compress_to_fp16: bool) -> None:
    """Save the IR to ``xml_path`` with its weights at ``bin_path`` (OpenVINO puts them beside the xml)."""
    import openvino as ov

    ov.save_model(ov_model, str(xml_path), compress_to_fp16=compress_to_fp16)
    written = xml_path.with_suffix(".bin")
    if written != bin_path:
        os.replace(written, bin_path)


def _build(model: DMPHN, path: Path, *, batch: int, height: int, width: int, device: str, precision: str,
           **options: Any) -> dict[str, Any]:
    return export_openvino(model, path, batch=batch, height=height, width=width, precision=precision, **options)


EXPORTER = Exporter(format="openvino", runtime="ov", suffix=".xml", precisions=PRECISIONS, devices=("cpu",),
                    build=_build, companions=lambda path: [Path(path).with_suffix(".bin")])
