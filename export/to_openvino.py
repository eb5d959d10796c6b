"""DMPHN -> OpenVINO IR (``.xml`` + ``.bin``), float or int8, with the toolkit's metadata.

The IR is converted from the project's static ONNX (:func:`export.to_onnx.export_onnx`) by
``openvino.convert_model``, so OpenVINO sees the same graph as ONNX Runtime and TensorRT.

Precisions:

* fp32 / bf16: float32 weights. bf16 is not a property of the file: OpenVINO picks it when
  the model is compiled (``INFERENCE_PRECISION_HINT``), so both write the same IR.
* fp16: weights stored as float16 (half the ``.bin``), decompressed when compiled.
* int8: NNCF post-training quantization (:mod:`export.ov_int8`): int8 convolutions, with the
  residual adds and the image-space convolutions kept float, calibrated at a small shape on
  :func:`export.calibration.calibration_batches` through a dynamic-H/W copy of the graph and
  then fixed to the export shape. The result is measured against the float model on other
  blurred images at the calibration shape (recorded as the calibration PSNR); with accuracy
  control (opt-in: slow), when that misses ``min_psnr_db``, NNCF puts back to float the layers
  that cost most until it holds (PSNR against fp32, the same measure as :mod:`runtimes.compare`).
  Either way the export is verified at its own shape against the int8 tolerance.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from dmphn_core.artifact import OPENVINO_RT_INFO_KEY, artifact_metadata, metadata_json
from dmphn_core.errors import DMPHNError
from dmphn_core.model import DMPHN

from .calibration import DEFAULT_SAMPLES, calibration_batches, calibration_shape
from .exporter import Exporter
from .ov_int8 import quantize_int8
from .to_onnx import export_onnx

PRECISIONS = ("fp32", "bf16", "fp16", "int8")
#: held-out blurred views the int8 model is measured on against the float model
VALIDATION_SAMPLES = 4


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
    accuracy_control: bool = False,
    min_psnr_db: float = 40.0,
    max_layers_reverted: int | None = None,
    keep_float: str = "auto",
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
    if precision == "int8":
        ov_model, info, lines = _int8_model(model, batch, height, width, calibration_dir, calibration_samples,
                                            keep_float=keep_float, accuracy_control=accuracy_control,
                                            min_psnr_db=min_psnr_db, max_layers_reverted=max_layers_reverted)
    else:
        with tempfile.TemporaryDirectory(prefix="dmphn-ov-") as scratch:
            onnx_path = Path(scratch) / "model.onnx"
            export_onnx(model, onnx_path, batch=batch, height=height, width=width)
            ov_model = ov.convert_model(str(onnx_path))
        info = {"openvino": ov.__version__, "precision": precision, "source": "static ONNX"}
        lines = [f"converted static ONNX {batch}x3x{height}x{width} to OpenVINO {ov.__version__}"]
    metadata = artifact_metadata(model.config, batch=batch, height=height, width=width, precision=precision,
                                 openvino=ov.__version__, **({"quantization": info["quantization"]} if "quantization" in info else {}))
    ov_model.set_rt_info(metadata_json(metadata), list(OPENVINO_RT_INFO_KEY))
    _save_pair(ov_model, path, weights_path, compress_to_fp16=precision == "fp16")
    info["log_lines"] = lines
    return info


def _int8_model(model: DMPHN, batch: int, height: int, width: int, calibration_dir, calibration_samples: int,
                **options: Any) -> tuple[Any, dict[str, Any], list[str]]:
    """Quantize a dynamic-H/W IR at the calibration shape, then fix it to ``batch x 3 x height x width``."""
    import openvino as ov

    ch, cw = calibration_shape(height, width, model.geometry.size_block)
    with tempfile.TemporaryDirectory(prefix="dmphn-ov-") as scratch:
        onnx_path = Path(scratch) / "model.onnx"
        export_onnx(model, onnx_path, batch=batch, height=ch, width=cw, dynamic_hw=True)
        dynamic = ov.convert_model(str(onnx_path))
    calibration = calibration_batches(batch, ch, cw, calibration_dir, calibration_samples)
    # checked on other camera-shake views than the default calibration set (another seed)
    validation = calibration_batches(batch, ch, cw, count=VALIDATION_SAMPLES, seed=1)
    quantized, quant_info = quantize_int8(dynamic, calibration, validation, **options)
    quantized.reshape({0: [batch, 3, height, width]})
    quant_info["calibration_source"] = str(calibration_dir) if calibration_dir else "camera-shake views of bundled photos"
    quant_info["validation_source"] = "camera-shake views of bundled photos (seed 1)"
    info = {"openvino": ov.__version__, "precision": "int8", "quantization": quant_info,
            "source": f"ONNX with dynamic H and W, calibrated at {ch}x{cw}, fixed to {height}x{width}"}
    floats = quant_info["float_convolutions"]
    lines = [
        f"converted ONNX (dynamic H, W) to OpenVINO {ov.__version__}; int8 by NNCF {quant_info['version']} on "
        f"{len(calibration)} calibration batch(es) of {batch}x3x{ch}x{cw} from {quant_info['calibration_source']}",
        f"  float: {', '.join(quant_info['float_op_types']) or 'no op types'} and {len(floats)} convolution(s) "
        f"({quant_info['int8_convolutions']} int8); {quant_info['fake_quantize_nodes']} FakeQuantize nodes",
        f"  PSNR vs fp32 on {len(validation)} held-out blurred view(s) at {ch}x{cw}: "
        f"{quant_info['validation_psnr_db']:.2f} dB (target {quant_info['min_psnr_db']:g} dB"
        + ("; accuracy control ran" if quant_info["accuracy_control_ran"] else "") + ")",
    ]
    return quantized, info, lines


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
                    build=_build)
