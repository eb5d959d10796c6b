"""dmphn-demo: the whole toolkit in one run, on the shipped model and a bundled photo.

1. blur a held-out photo (``rocket.jpg``, 427x640, never seen in training) with a
   camera-shake path, exactly as the training pairs were made;
2. deblur it with the shipped checkpoint; PSNR/SSIM before and after;
3. export ONNX and TorchScript at the photo's padded size, each verified against PyTorch;
4. run every CPU runtime on the same input: parity and latency side by side.

Writes the images, the exported models and ``report.json`` / ``report.md`` into ``--out``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
import typer
from rich.console import Console
from rich.table import Table

from dmphn_core.checkpoint import DEMO_CHECKPOINT, load_checkpoint
from dmphn_core.data.camera_shake import ShakeSettings, camera_path, shake
from dmphn_core.errors import DMPHNError
from dmphn_core.fileio import write_text_atomic
from dmphn_core.geometry import pad_to_block
from dmphn_core.imageio import image_to_tensor, read_image, write_image
from dmphn_core.inference import deblur_image
from dmphn_core.metrics import psnr, ssim
from dmphn_core.samples import photo_path
from cli.common import new_app, user_errors

app = new_app(__doc__.splitlines()[0].removeprefix("dmphn-demo: "))
console = Console()


def _side_by_side(*images: np.ndarray, gap: int = 8) -> np.ndarray:
    height = images[0].shape[0]
    spacer = np.ones((height, gap, 3), np.float32)
    parts = [part for image in images for part in (image, spacer)][:-1]
    return np.concatenate(parts, axis=1)


def _runtimes_side_by_side(model, blurred: np.ndarray, out: Path, iters: int) -> tuple[list[dict[str, Any]], list[str]]:
    """Export ONNX + TorchScript at the padded size; parity and latency of every CPU runtime."""
    from benchmarks.timing import time_runner
    from export.to_onnx import export_onnx
    from export.to_torchscript import export_torchscript
    from runtimes.compare import compare_outputs, tolerance_for
    from runtimes.onnxruntime import OnnxRuntimeRunner
    from runtimes.torch_eager import TorchReferenceRunner, TorchRunner
    from runtimes.torchscript import TorchScriptRunner

    x, _ = pad_to_block(image_to_tensor(blurred), model.geometry)
    _, _, height, width = x.shape
    log: list[str] = []
    onnx_path, ts_path = out / f"dmphn_{height}x{width}.onnx", out / f"dmphn_{height}x{width}.ts"
    for export, path in ((export_onnx, onnx_path), (export_torchscript, ts_path)):
        info = export(model, path, batch=1, height=height, width=width)
        log += info.get("log_lines", [])
    with torch.no_grad():
        reference = model(x)
    tolerance = tolerance_for("fp32")
    rows = []
    runners = [TorchRunner(model), TorchReferenceRunner(model), TorchScriptRunner(ts_path), OnnxRuntimeRunner(onnx_path)]
    try:
        from export.to_openvino import export_openvino
        from runtimes.openvino import OpenVINORunner
    except ImportError:  # openvino is optional for the demo: the other runtimes still compare
        OpenVINORunner = None
    if OpenVINORunner is not None and OpenVINORunner.unavailable_reason("cpu", "fp32") is None:
        ov_path = out / f"dmphn_{height}x{width}.xml"
        log += export_openvino(model, ov_path, batch=1, height=height, width=width).get("log_lines", [])
        runners.append(OpenVINORunner(ov_path))
    for runner in runners:
        with runner:
            comparison = compare_outputs(runner.infer(x), reference, tolerance)
            stats = time_runner(runner, x, warmup=1, iters=iters)
        rows.append({"runtime": runner.runtime, "runner": runner.name, "shape": f"1x3x{height}x{width}",
                     "max_abs": comparison.max_abs, "psnr_db": comparison.psnr_db, "parity": comparison.passed,
                     "p50_ms": stats.p50_ms, "min_ms": stats.min_ms})
    reference_ms = next(r["p50_ms"] for r in rows if r["runtime"] == "torch-ref")
    for row in rows:
        row["speedup_vs_per_patch"] = reference_ms / row["p50_ms"]
    return rows, log


def _markdown(report: dict[str, Any]) -> str:
    quality = report["quality"]
    lines = [
        f"# dmphn-demo — {report['model']} on {report['photo']} ({report['size'][0]}x{report['size'][1]})",
        "",
        f"Checkpoint: `{report['checkpoint']}`; blur: camera shake, max path {report['blur']['max_shift']} px, "
        f"{report['blur']['subframes']} sub-frames, seed {report['blur']['seed']}.",
        "",
        "| image | PSNR (dB) | SSIM |",
        "| --- | ---: | ---: |",
        f"| blurred | {quality['blurred_psnr_db']:.2f} | {quality['blurred_ssim']:.4f} |",
        f"| deblurred | {quality['deblurred_psnr_db']:.2f} | {quality['deblurred_ssim']:.4f} |",
        "",
        f"Gain: {quality['gain_db']:+.2f} dB PSNR, {quality['ssim_gain']:+.4f} SSIM.",
    ]
    if report.get("runtimes"):
        lines += ["", "| runtime | shape | max abs vs PyTorch | parity (fp32 ≤ 1e-4) | p50 ms | min ms | × per-patch |",
                  "| --- | --- | ---: | --- | ---: | ---: | ---: |"]
        lines += [f"| {r['runner']} | {r['shape']} | {r['max_abs']:.2e} | {'pass' if r['parity'] else 'FAIL'} | "
                  f"{r['p50_ms']:.1f} | {r['min_ms']:.1f} | {r['speedup_vs_per_patch']:.2f} |" for r in report["runtimes"]]
    return "\n".join(lines) + "\n"


@app.command()
@user_errors
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for images, exported models and the report")] = Path("dmphn-demo"),
    photo: Annotated[Path | None, typer.Option(help="a sharp photo of your own (default: bundled rocket.jpg)")] = None,
    checkpoint: Annotated[Path | None, typer.Option("--checkpoint", "-c", help="model (default: the shipped demo model)")] = None,
    max_shift: Annotated[float, typer.Option(help="camera path length in pixels")] = 24.0,
    seed: Annotated[int, typer.Option(help="seed of the camera path")] = 0,
    runtimes: Annotated[bool, typer.Option("--runtimes/--no-runtimes", help="export and compare runtimes")] = True,
    iters: Annotated[int, typer.Option(help="timed runs per runtime")] = 3,
    threads: Annotated[int | None, typer.Option(help="CPU threads (default: torch's choice)")] = None,
) -> None:
    """Blur, deblur, score, export and compare runtimes; print a summary and write a report."""
    from runtimes.torch_eager import TorchRunner

    if threads:
        torch.set_num_threads(threads)
    begin = time.perf_counter()
    checkpoint_path = checkpoint or DEMO_CHECKPOINT
    if checkpoint is None and not DEMO_CHECKPOINT.is_file():
        raise DMPHNError(f"the shipped demo checkpoint is missing ({DEMO_CHECKPOINT}); pass --checkpoint")
    model = load_checkpoint(checkpoint_path).build_model()
    photo_file = photo or photo_path("rocket.jpg")
    sharp = read_image(photo_file)
    out.mkdir(parents=True, exist_ok=True)

    settings = ShakeSettings(max_shift=max_shift)
    rng = np.random.default_rng(seed)
    blurred = shake(sharp, camera_path(rng, settings), settings, rng)["blur_gamma"]
    with TorchRunner(model) as runner:
        started = time.perf_counter()
        deblurred = deblur_image(runner, blurred)
        deblur_seconds = time.perf_counter() - started
    quality = {
        "blurred_psnr_db": psnr(blurred, sharp), "blurred_ssim": ssim(blurred, sharp),
        "deblurred_psnr_db": psnr(deblurred, sharp), "deblurred_ssim": ssim(deblurred, sharp),
    }
    quality["gain_db"] = quality["deblurred_psnr_db"] - quality["blurred_psnr_db"]
    quality["ssim_gain"] = quality["deblurred_ssim"] - quality["blurred_ssim"]
    for name, image in (("sharp", sharp), ("blurred", blurred), ("deblurred", deblurred)):
        write_image(out / f"{name}.png", image)
    write_image(out / "blurred_deblurred_sharp.png", _side_by_side(blurred, deblurred, sharp))
    console.print(f"{model.config.name} deblurred {photo_file.name} ({sharp.shape[0]}x{sharp.shape[1]}) in "
                  f"{deblur_seconds:.2f}s: PSNR {quality['blurred_psnr_db']:.2f} -> {quality['deblurred_psnr_db']:.2f} dB "
                  f"({quality['gain_db']:+.2f}), SSIM {quality['blurred_ssim']:.4f} -> {quality['deblurred_ssim']:.4f}")

    report: dict[str, Any] = {
        "model": model.config.name, "checkpoint": str(checkpoint_path), "photo": photo_file.name,
        "size": list(sharp.shape[:2]), "blur": {"max_shift": max_shift, "subframes": settings.subframes, "seed": seed},
        "quality": quality, "deblur_seconds": deblur_seconds, "threads": torch.get_num_threads(),
    }
    if runtimes:
        rows, log = _runtimes_side_by_side(model, blurred, out, iters)
        for line in log:
            console.print(line)
        report["runtimes"] = rows
        table = Table(title=f"runtimes on the same input ({rows[0]['shape']}, CPU, {torch.get_num_threads()} threads)")
        for column in ("runtime", "max abs vs PyTorch", "parity", "p50 ms", "× per-patch"):
            table.add_column(column, justify="left" if column in ("runtime", "parity") else "right")
        for r in rows:
            table.add_row(r["runner"], f"{r['max_abs']:.2e}", "pass" if r["parity"] else "FAIL", f"{r['p50_ms']:.1f}",
                          f"{r['speedup_vs_per_patch']:.2f}")
        console.print(table)
    report["seconds"] = time.perf_counter() - begin
    write_text_atomic(out / "report.json", json.dumps(report, indent=2))
    write_text_atomic(out / "report.md", _markdown(report))
    console.print(f"wrote {out}/: sharp.png, blurred.png, deblurred.png, blurred_deblurred_sharp.png, report.json, report.md"
                  + (", exported .onnx and .ts" if runtimes else "") + f" ({report['seconds']:.0f}s)")
    if runtimes and not all(r["parity"] for r in report["runtimes"]):
        raise DMPHNError("a runtime disagreed with PyTorch beyond fp32 tolerance (see the table)")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
