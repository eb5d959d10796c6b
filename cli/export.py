"""dmphn-export: checkpoint -> TorchScript / ONNX / TensorRT / AOTInductor / OpenVINO / Triton repository.

Every export is written to a temporary file beside its destination, run through its
runtime and compared with PyTorch fp32 (:mod:`export.verify`); only an artifact that
passes is renamed into place. A failed export exits non-zero and leaves nothing behind.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from dmphn_core.checkpoint import DEMO_CHECKPOINT, load_checkpoint
from cli.common import new_app, user_errors
from dmphn_core.errors import DMPHNError
from dmphn_core.fileio import atomic_path, write_text_atomic
from dmphn_core.model import DMPHN
from runtimes.base import PRECISIONS, Runner
from runtimes.compare import tolerance_for

from export.verify import VerificationReport, verify_runner

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
DynHWOpt = Annotated[bool, typer.Option("--dynamic-hw/--static-hw", help="leave H and W dynamic (multiples of the size block)")]


class ExportFailed(DMPHNError):
    pass


def _load(checkpoint: Path | None, height: int, width: int, batch: int) -> DMPHN:
    model = load_checkpoint(checkpoint or DEMO_CHECKPOINT).build_model()
    model.geometry.check_size(height, width)
    if batch < 1:
        raise DMPHNError(f"--batch must be at least 1, got {batch}")
    return model


def _check_precision(precision: str, allowed: tuple[str, ...] = PRECISIONS) -> None:
    if precision not in allowed:
        raise DMPHNError(f"unknown or unsupported precision {precision!r} here; use one of {', '.join(allowed)}")


def _default_output(model: DMPHN, batch: int, height: int, width: int, suffix: str, tag: str = "") -> Path:
    return Path(f"dmphn-{model.geometry.name}_b{batch}_{height}x{width}{tag}{suffix}")


def _export_verified(
    *,
    kind: str,
    output: Path,
    model: DMPHN,
    build: Callable[[Path], dict[str, Any]],
    make_runner: Callable[[Path], Runner],
    precision: str,
    shapes: list[tuple[int, int, int]],
    max_abs: float | None,
    min_psnr: float | None,
    report: Path | None,
) -> tuple[dict[str, Any], VerificationReport]:
    """Build into a temporary file, verify it, and only then move it to ``output``."""
    tolerance = tolerance_for(precision, max_abs=max_abs, min_psnr_db=min_psnr)
    with atomic_path(output) as tmp:
        info = build(tmp)
        for line in info.pop("log_lines", []):
            print(line)
        verification = verify_runner(make_runner(tmp), model, tolerance, shapes)
        print("\n".join(verification.lines()))
        if report is not None:
            write_text_atomic(report, json.dumps({"kind": kind, "artifact": str(output), "export": info,
                                                  "verification": verification.to_dict()}, indent=2, default=str))
        if not verification.passed:
            raise ExportFailed(f"{kind} export failed verification ({tolerance.describe()}); {output} was not written")
    print(f"wrote {output}")
    return info, verification


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
    from runtimes.torchscript import TorchScriptRunner

    from export.to_torchscript import export_torchscript

    model = _load(checkpoint, height, width, batch)
    output = output or _default_output(model, batch, height, width, ".ts")
    _export_verified(
        kind="torchscript", output=output, model=model, precision="fp32",
        build=lambda path: export_torchscript(model, path, batch=batch, height=height, width=width, device=device),
        make_runner=lambda path: TorchScriptRunner(path, device=device),
        shapes=[(batch, height, width)], max_abs=max_abs, min_psnr=None, report=report,
    )


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
    from runtimes.onnxruntime import OnnxRuntimeRunner

    from export.to_onnx import export_onnx

    model = _load(checkpoint, height, width, batch)
    output = output or _default_output(model, batch, height, width, ".onnx")
    shapes = [(batch, height, width)]
    if dynamic_batch:
        shapes.append((batch + 1, height, width))
    if dynamic_hw:
        bh, bw = model.geometry.size_block
        shapes.append((batch, height + bh, width + 2 * bw))
    _export_verified(
        kind="onnx", output=output, model=model, precision="fp32",
        build=lambda path: export_onnx(
            model, path, batch=batch, height=height, width=width, dynamic_batch=dynamic_batch,
            dynamic_hw=dynamic_hw, opset=opset, simplify=simplify,
        ),
        make_runner=lambda path: OnnxRuntimeRunner(path, device="cpu"),
        shapes=shapes, max_abs=max_abs, min_psnr=None, report=report,
    )


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
    workspace_gb: Annotated[float, typer.Option(help="builder workspace limit in GiB")] = 4.0,
    timing_cache: Annotated[Path | None, typer.Option(help="timing cache file to reuse and update")] = None,
    max_abs: MaxAbsOpt = None,
    min_psnr: MinPsnrOpt = None,
    report: ReportOpt = None,
) -> None:
    """TensorRT engine (+ JSON sidecar) built from ONNX with the TensorRT Python API; needs CUDA + tensorrt."""
    from runtimes.tensorrt import TensorRTRunner

    from dmphn_core.artifact import sidecar_path
    from export.to_tensorrt import build_engine, check_tensorrt_available

    _check_precision(precision, ("fp32", "tf32", "fp16"))
    check_tensorrt_available()
    model = _load(checkpoint, height, width, batch)
    output = output or _default_output(model, batch, height, width, ".engine", f"_{precision}")
    shapes = [(batch, height, width)] + ([(max_batch, height, width)] if max_batch and max_batch != batch else [])
    # The sidecar is written to its own temporary file and renamed right after the engine,
    # so both appear together after verification, or neither does.
    with atomic_path(sidecar_path(output)) as sidecar:
        _export_verified(
            kind="tensorrt", output=output, model=model, precision=precision,
            build=lambda path: build_engine(
                model, path, batch=batch, height=height, width=width, precision=precision, onnx_path=onnx_path,
                max_batch=max_batch, workspace_gb=workspace_gb, timing_cache=timing_cache, sidecar=sidecar,
            ),
            make_runner=lambda path: TensorRTRunner(path, precision=precision, sidecar=sidecar),
            shapes=shapes, max_abs=max_abs, min_psnr=min_psnr, report=report,
        )
    print(f"wrote {sidecar_path(output)}")


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
    from runtimes.aoti import AOTIRunner

    from export.to_aoti import export_aoti

    _check_precision(precision, ("fp32", "fp16", "bf16"))
    model = _load(checkpoint, height, width, batch)
    output = output or _default_output(model, batch, height, width, ".pt2", f"_{device}_{precision}")
    shapes = [(batch, height, width)] + ([(batch + 1, height, width)] if dynamic_batch else [])
    _export_verified(
        kind="aoti", output=output, model=model, precision=precision,
        build=lambda path: export_aoti(
            model, path, batch=batch, height=height, width=width, device=device, precision=precision,
            dynamic_batch=dynamic_batch,
        ),
        make_runner=lambda path: AOTIRunner(path, device=device, precision=precision),
        shapes=shapes, max_abs=max_abs, min_psnr=min_psnr, report=report,
    )


@app.command()
@user_errors
def openvino(
    checkpoint: CheckpointArg = None,
    height: HeightOpt = 256,
    width: WidthOpt = 256,
    batch: BatchOpt = 1,
    output: OutputOpt = None,
    precision: Annotated[str, typer.Option(help="fp32, bf16, fp16 or int8 (NNCF post-training quantization)")] = "fp32",
    calibration: Annotated[Path | None, typer.Option(help="int8: folder of calibration images (default: camera-shake views of bundled photos)")] = None,
    calibration_samples: Annotated[int, typer.Option(help="int8: calibration images to use")] = 9,
    accuracy_control: Annotated[bool, typer.Option("--accuracy-control/--no-accuracy-control", help="int8: revert the costliest layers to float until the PSNR target holds")] = True,
    threads: Annotated[int | None, typer.Option(help="CPU threads for verification")] = None,
    max_abs: MaxAbsOpt = None,
    min_psnr: MinPsnrOpt = None,
    report: ReportOpt = None,
) -> None:
    """OpenVINO IR (.xml + .bin) from the static ONNX; int8 by NNCF; verified with the OpenVINO runner."""
    from runtimes.openvino import OpenVINORunner

    from export.to_openvino import PRECISIONS as OV_PRECISIONS, check_openvino_available, export_openvino

    _check_precision(precision, OV_PRECISIONS)
    check_openvino_available(int8=precision == "int8")
    reason = OpenVINORunner.unavailable_reason("cpu", precision)
    if reason:
        # bf16/fp16 are chosen when the IR is compiled: the fp32 IR runs at bf16 on a CPU that has it
        raise DMPHNError(f"cannot verify a {precision} OpenVINO export here: {reason}. The {precision} IR is the "
                         f"fp32 one: export with --precision fp32 and run it at {precision} on a CPU that has it")
    if calibration is not None and precision != "int8":
        raise DMPHNError("--calibration is for --precision int8 only")
    model = _load(checkpoint, height, width, batch)
    output = output or _default_output(model, batch, height, width, ".xml", f"_{precision}")
    if output.suffix.lower() != ".xml":
        raise DMPHNError(f"an OpenVINO IR is written as NAME.xml (+ NAME.bin); got {output}")
    tolerance = tolerance_for(precision, max_abs=max_abs, min_psnr_db=min_psnr)
    # The .bin gets its own temporary name and is renamed right after the .xml: after
    # verification both appear, or (on failure) neither does.
    with atomic_path(output.with_suffix(".bin")) as weights:
        _export_verified(
            kind="openvino", output=output, model=model, precision=precision,
            build=lambda path: export_openvino(
                model, path, batch=batch, height=height, width=width, precision=precision,
                calibration_dir=calibration, calibration_samples=calibration_samples,
                accuracy_control=accuracy_control, min_psnr_db=tolerance.min_psnr_db or 40.0, weights_path=weights,
            ),
            make_runner=lambda path: OpenVINORunner(path, precision=precision, weights=weights, threads=threads),
            shapes=[(batch, height, width)], max_abs=max_abs, min_psnr=min_psnr, report=report,
        )
    print(f"wrote {output.with_suffix('.bin')}")


@app.command()
@user_errors
def triton(
    checkpoint: CheckpointArg = None,
    height: HeightOpt = 720,
    width: WidthOpt = 1280,
    output: Annotated[Path, typer.Option("--output", "-o", help="model repository folder")] = Path("model_repository"),
    model_name: Annotated[str, typer.Option(help="model folder name inside the repository")] = "dmphn",
    backend: Annotated[str, typer.Option(help="onnx (onnxruntime backend) or trt (tensorrt_plan)")] = "onnx",
    max_batch: Annotated[int, typer.Option(help="max_batch_size; dynamic batching up to it")] = 8,
    instances: Annotated[int, typer.Option(help="model instances per device")] = 1,
    device: Annotated[str, typer.Option(help="instance group kind: cpu or gpu")] = "gpu",
    precision: Annotated[str, typer.Option(help="engine precision for --backend trt")] = "fp16",
) -> None:
    """Triton Inference Server model repository: <output>/<model_name>/{config.pbtxt, 1/model.*}."""
    from export.to_triton import write_triton_repository

    model = _load(checkpoint, height, width, 1)
    for line in write_triton_repository(
        model, output, model_name=model_name, backend=backend, height=height, width=width,
        max_batch=max_batch, instances=instances, device=device, precision=precision,
    ):
        print(line)


def main() -> None:
    app()
