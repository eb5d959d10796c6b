"""dmphn-export: checkpoint -> TorchScript / ONNX / TensorRT / AOTInductor / OpenVINO / ExecuTorch / Triton repository.

Every export is written to a temporary file beside its destination, run through its
runtime and compared with PyTorch fp32 (:mod:`export.verify`); only an artifact that
passes is renamed into place. A failed export exits non-zero and leaves nothing behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import new_app, user_errors
from dmphn_core.checkpoint import DEMO_CHECKPOINT, load_checkpoint
from dmphn_core.errors import DMPHNError
from dmphn_core.model import DMPHN
from dmphn_core.precision import check_precision, tolerance_for
from export.calibration import check_keep_float
from export.exporter import export_verified, exporter_for

app = new_app(__doc__.splitlines()[0].removeprefix("dmphn-export: "))

CheckpointArg = Annotated[Path | None, typer.Argument(help="checkpoint file (default: the shipped demo model)")]
HeightOpt = Annotated[int, typer.Option("--height", "-H", help="input height (a multiple of the size block)")]
WidthOpt = Annotated[int, typer.Option("--width", "-W", help="input width (a multiple of the size block)")]
BatchOpt = Annotated[int, typer.Option("--batch", "-b", help="batch size baked into static shapes")]
OutputOpt = Annotated[Path | None, typer.Option("--output", "-o", help="artifact path (default: named after model and shape)")]
MaxAbsOpt = Annotated[float | None, typer.Option("--max-abs", help="verification bound on max |diff| (default per precision)")]
MinPsnrOpt = Annotated[float | None, typer.Option("--min-psnr", help="verification bound on PSNR in dB (default per precision)")]
ReportOpt = Annotated[Path | None, typer.Option("--report", help="also write export info and verification as JSON")]
DynBatchOpt = Annotated[bool, typer.Option("--dynamic-batch/--static-batch", help="leave the batch axis dynamic")]
CalibrationOpt = Annotated[Path | None, typer.Option(help="int8: folder of calibration images (default: camera-shake views of bundled photos)")]
CalibrationSamplesOpt = Annotated[int, typer.Option(help="int8: calibration images to use")]
VerifyThreadsOpt = Annotated[int | None, typer.Option(help="CPU threads for verification")]
DynHWOpt = Annotated[bool, typer.Option("--dynamic-hw/--static-hw", help="leave H and W dynamic (multiples of the size block)")]


def _load(checkpoint: Path | None, height: int, width: int, batch: int) -> DMPHN:
    if height <= 0 or width <= 0:
        # before loading anything, and not as "crop to 0x64": a size must be positive first
        raise DMPHNError(f"--height/-H and --width/-W must be positive; got {height}x{width}")
    model = load_checkpoint(checkpoint or DEMO_CHECKPOINT).build_model()
    model.geometry.check_size(height, width)
    if batch < 1:
        raise DMPHNError(f"--batch must be at least 1, got {batch}")
    return model


def _default_output(model: DMPHN, batch: int, height: int, width: int, fmt: str, tag: str = "") -> Path:
    return Path(f"dmphn-{model.geometry.name}_b{batch}_{height}x{width}{tag}{exporter_for(fmt).suffix}")


@app.command()
@user_errors
def torchscript(
    checkpoint: CheckpointArg = None,
    height: HeightOpt = 256,
    width: WidthOpt = 256,
    batch: BatchOpt = 1,
    output: OutputOpt = None,
    device: Annotated[str, typer.Option(help="device the module is traced on and verified on: cpu or cuda")] = "cpu",
    max_abs: MaxAbsOpt = None,
    report: ReportOpt = None,
) -> None:
    """TorchScript (torch.jit.trace of the static-shape model), with config as an extra file."""
    model = _load(checkpoint, height, width, batch)
    output = output or _default_output(model, batch, height, width, "torchscript")
    export_verified("torchscript", model, output, batch=batch, height=height, width=width, device=device,
                    max_abs=max_abs, report=report)


@app.command()
@user_errors
def onnx(
    checkpoint: CheckpointArg = None,
    height: HeightOpt = 256,
    width: WidthOpt = 256,
    batch: BatchOpt = 1,
    output: OutputOpt = None,
    dynamic_batch: DynBatchOpt = False,
    dynamic_hw: DynHWOpt = False,
    opset: Annotated[int, typer.Option(help="ONNX opset (>= 17)")] = 18,
    simplify: Annotated[bool, typer.Option("--simplify/--no-simplify", help="run onnxslim, kept only if parity holds")] = True,
    max_abs: MaxAbsOpt = None,
    report: ReportOpt = None,
) -> None:
    """ONNX (opset >= 17), checked by onnx.checker, simplified, verified with ONNX Runtime CPU."""
    model = _load(checkpoint, height, width, batch)
    output = output or _default_output(model, batch, height, width, "onnx")
    shapes = [(batch, height, width)]
    if dynamic_batch:
        shapes.append((batch + 1, height, width))
    if dynamic_hw:
        bh, bw = model.geometry.size_block
        shapes.append((batch, height + bh, width + 2 * bw))
    export_verified("onnx", model, output, batch=batch, height=height, width=width, verify_shapes=shapes,
                    max_abs=max_abs, report=report, dynamic_batch=dynamic_batch, dynamic_hw=dynamic_hw,
                    opset=opset, simplify=simplify)


@app.command()
@user_errors
def trt(
    checkpoint: CheckpointArg = None,
    height: HeightOpt = 720,
    width: WidthOpt = 1280,
    batch: BatchOpt = 1,
    output: OutputOpt = None,
    precision: Annotated[str, typer.Option(help="fp32, tf32 or fp16")] = "fp16",
    onnx_path: Annotated[Path | None, typer.Option("--onnx", help="reuse this ONNX instead of exporting one")] = None,
    max_batch: Annotated[int | None, typer.Option(help="dynamic batch: optimisation profile 1..MAX (opt = --batch)")] = None,
    workspace_gb: Annotated[float | None, typer.Option(help="cap on the builder's workspace in GiB (default: TensorRT's, the GPU's memory; a cap prunes tactics)")] = None,
    precision_constraints: Annotated[str, typer.Option(help="fp16 overflow guard's fp32 pins: obey (fail the build if one cannot be kept) or prefer (TensorRT may break one, with a warning)")] = "obey",
    timing_cache: Annotated[Path | None, typer.Option(help="timing cache file to reuse and update")] = None,
    max_abs: MaxAbsOpt = None,
    min_psnr: MinPsnrOpt = None,
    report: ReportOpt = None,
) -> None:
    """TensorRT engine (+ JSON sidecar) built from ONNX with the TensorRT Python API; needs CUDA + tensorrt."""
    from export.to_tensorrt import PRECISION_CONSTRAINTS, check_tensorrt_available

    check_precision(precision, exporter_for("tensorrt").precisions, "TensorRT precision")  # named before availability
    if precision_constraints not in PRECISION_CONSTRAINTS:
        raise DMPHNError(f"unknown --precision-constraints {precision_constraints!r}; use {' or '.join(PRECISION_CONSTRAINTS)}")
    check_tensorrt_available()
    model = _load(checkpoint, height, width, batch)
    output = output or _default_output(model, batch, height, width, "tensorrt", f"_{precision}")
    shapes = [(batch, height, width)] + ([(max_batch, height, width)] if max_batch and max_batch != batch else [])
    export_verified("tensorrt", model, output, batch=batch, height=height, width=width, device="cuda",
                    precision=precision, verify_shapes=shapes, max_abs=max_abs, min_psnr=min_psnr, report=report,
                    onnx_path=onnx_path, max_batch=max_batch, workspace_gb=workspace_gb, timing_cache=timing_cache,
                    precision_constraints=precision_constraints)


@app.command()
@user_errors
def aoti(
    checkpoint: CheckpointArg = None,
    height: HeightOpt = 256,
    width: WidthOpt = 256,
    batch: BatchOpt = 1,
    output: OutputOpt = None,
    device: Annotated[str, typer.Option(help="cpu or cuda")] = "cpu",
    precision: Annotated[str, typer.Option(help="fp32, fp16 or bf16 (fp16/bf16: CUDA)")] = "fp32",
    dynamic_batch: DynBatchOpt = False,
    max_abs: MaxAbsOpt = None,
    min_psnr: MinPsnrOpt = None,
    report: ReportOpt = None,
) -> None:
    """AOTInductor package (.pt2): torch.export + aoti_compile_and_package; loadable from C++."""
    check_precision(precision, exporter_for("aoti").precisions, "aoti precision")
    model = _load(checkpoint, height, width, batch)
    output = output or _default_output(model, batch, height, width, "aoti", f"_{device}_{precision}")
    shapes = [(batch, height, width)] + ([(batch + 1, height, width)] if dynamic_batch else [])
    export_verified("aoti", model, output, batch=batch, height=height, width=width, device=device,
                    precision=precision, verify_shapes=shapes, max_abs=max_abs, min_psnr=min_psnr, report=report,
                    dynamic_batch=dynamic_batch)


@app.command()
@user_errors
def openvino(
    checkpoint: CheckpointArg = None,
    height: HeightOpt = 256,
    width: WidthOpt = 256,
    batch: BatchOpt = 1,
    output: OutputOpt = None,
    precision: Annotated[str, typer.Option(help="fp32, bf16, fp16 or int8 (NNCF post-training quantization)")] = "fp32",
    calibration: CalibrationOpt = None,
    calibration_samples: CalibrationSamplesOpt = 9,
    accuracy_control: Annotated[bool, typer.Option("--accuracy-control/--no-accuracy-control", help="int8: if the calibration PSNR misses the target, let NNCF revert the costliest layers to float until it holds (slow: many minutes)")] = False,
    keep_float: Annotated[str, typer.Option(help="int8: auto (residual adds and image-space convolutions stay float) or none (quantize everything NNCF can)")] = "auto",
    threads: VerifyThreadsOpt = None,
    max_abs: MaxAbsOpt = None,
    min_psnr: MinPsnrOpt = None,
    report: ReportOpt = None,
) -> None:
    """OpenVINO IR (.xml + .bin) from the static ONNX; int8 by NNCF; verified with the OpenVINO runner."""
    from export.to_openvino import check_openvino_available
    from runtimes.openvino import OpenVINORunner

    check_precision(precision, exporter_for("openvino").precisions, "OpenVINO precision")
    check_openvino_available(int8=precision == "int8")
    reason = OpenVINORunner.unavailable_reason("cpu", precision)
    if reason:
        # bf16/fp16 are chosen when the IR is compiled: the fp32 IR runs at bf16 on a CPU that has it
        raise DMPHNError(f"cannot verify a {precision} OpenVINO export here: {reason}. The {precision} IR is the "
                         f"fp32 one: export with --precision fp32 and run it at {precision} on a CPU that has it")
    if calibration is not None and precision != "int8":
        raise DMPHNError("--calibration is for --precision int8 only")
    check_keep_float(keep_float, "--keep-float")
    model = _load(checkpoint, height, width, batch)
    output = output or _default_output(model, batch, height, width, "openvino", f"_{precision}")
    if output.suffix.lower() != ".xml":
        raise DMPHNError(f"an OpenVINO IR is written as NAME.xml (+ NAME.bin); got {output}")
    target_db = tolerance_for(precision, min_psnr_db=min_psnr).min_psnr_db or 40.0
    export_verified("openvino", model, output, batch=batch, height=height, width=width, precision=precision,
                    max_abs=max_abs, min_psnr=min_psnr, report=report, runner_options={"threads": threads},
                    calibration_dir=calibration, calibration_samples=calibration_samples,
                    accuracy_control=accuracy_control, min_psnr_db=target_db,
                    **({"keep_float": keep_float} if precision == "int8" else {}))


@app.command()
@user_errors
def executorch(
    checkpoint: CheckpointArg = None,
    height: HeightOpt = 256,
    width: WidthOpt = 256,
    batch: BatchOpt = 1,
    output: OutputOpt = None,
    precision: Annotated[str, typer.Option(help="fp32, fp16 or int8 (PT2E post-training quantization)")] = "fp32",
    calibration: CalibrationOpt = None,
    calibration_samples: CalibrationSamplesOpt = 9,
    keep_float: Annotated[str, typer.Option(help="int8: auto (residual adds and image-space convolutions stay float) or none (quantize everything the XNNPACK quantizer can)")] = "auto",
    threads: VerifyThreadsOpt = None,
    max_abs: MaxAbsOpt = None,
    min_psnr: MinPsnrOpt = None,
    report: ReportOpt = None,
) -> None:
    """ExecuTorch program (.pte): static torch.export, fully lowered to XNNPACK; verified with the et runner."""
    from runtimes.executorch import check_executorch_available

    check_precision(precision, exporter_for("executorch").precisions, "ExecuTorch precision")
    check_executorch_available()
    if calibration is not None and precision != "int8":
        raise DMPHNError("--calibration is for --precision int8 only")
    check_keep_float(keep_float, "--keep-float")
    model = _load(checkpoint, height, width, batch)
    output = output or _default_output(model, batch, height, width, "executorch", f"_{precision}")
    if output.suffix.lower() != ".pte":
        raise DMPHNError(f"an ExecuTorch program is written as NAME.pte; got {output}")
    export_verified("executorch", model, output, batch=batch, height=height, width=width, precision=precision,
                    max_abs=max_abs, min_psnr=min_psnr, report=report, runner_options={"threads": threads},
                    **({"calibration_dir": calibration, "calibration_samples": calibration_samples,
                        "keep_float": keep_float} if precision == "int8" else {}))


@app.command()
@user_errors
def triton(
    checkpoint: CheckpointArg = None,
    height: HeightOpt = 720,
    width: WidthOpt = 1280,
    output: Annotated[Path, typer.Option("--output", "-o", help="model repository folder")] = Path("model_repository"),
    model_name: Annotated[str, typer.Option(help="model folder name inside the repository")] = "dmphn",
    backend: Annotated[str, typer.Option(
        help="python (toolkit runner in Triton's Python backend; dmphn-serve runs it on CPU), "
             "onnxruntime (alias onnx) or tensorrt (alias trt)")] = "onnx",
    max_batch: Annotated[int, typer.Option(help="max_batch_size; dynamic batching up to it")] = 8,
    instances: Annotated[int, typer.Option(help="model instances per device")] = 1,
    device: Annotated[str | None, typer.Option(help="instance group kind: cpu or gpu (default: cpu for python, "
                                                     "else gpu)")] = None,
    precision: Annotated[str | None, typer.Option(help="engine precision for --backend tensorrt (default fp16); "
                                                        "others serve fp32")] = None,
    python_runtime: Annotated[str, typer.Option(help="runner of --backend python: ort or et (ExecuTorch, static batch 1)")] = "ort",
    threads: Annotated[int, typer.Option(help="--backend python: CPU threads per instance (0: runtime default)")] = 0,
) -> None:
    """Triton Inference Server model repository: <output>/<model_name>/{config.pbtxt, 1/model.*}."""
    from export.to_triton import write_triton_repository

    model = _load(checkpoint, height, width, 1)
    for line in write_triton_repository(
        model, output, model_name=model_name, backend=backend, height=height, width=width,
        max_batch=max_batch, instances=instances, device=device, precision=precision,
        runtime=python_runtime, threads=threads,
    ):
        print(line)


def main() -> None:
    app()
