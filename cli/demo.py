"""dmphn-demo: the whole toolkit in one run, on the shipped model and a bundled photo.

1. blur a held-out photo (``rocket.jpg``, 640x427 WxH, never seen in training) with a
   camera-shake path, exactly as the training pairs were made;
2. deblur it with the shipped checkpoint; PSNR/SSIM before and after; a labelled picture with a
   zoomed row where deblurring changed the image most; one line saying the model is small and
   the command that shows the real one;
3. export ONNX, TorchScript and OpenVINO IR at the photo's padded size, each verified against PyTorch;
4. time the CPU runtimes on the same input, parity and latency side by side: PyTorch (static
   and per-patch), TorchScript, ONNX Runtime and OpenVINO. AOTInductor and torch.compile are
   timed only with ``--all-runtimes``: compiling them costs minutes on a small CPU, more than the
   rest of the demo (``dmphn-bench --runtime all`` times every runtime).

``--model authors`` instead runs the authors' GoPro weights on one of their real blurred GoPro
frames, against their published output (:mod:`cli.demo_authors`). ``--crop HxW`` runs on a
centre crop (a quick check of the whole path). Writes the images, the exported models and
``report.json`` / ``report.md`` into ``--out``.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
import typer
from rich.console import Console
from rich.table import Table

from cli.common import MinPsnrOpt, auto_precision_help, new_app, runtime_help, user_errors
from cli.demo_authors import DEFAULT_FRAME, run_authors_demo
from cli.picture import centre_crop, comparison_picture, most_changed_window  # noqa: F401 - tests use most_changed_window from here
from dmphn_core import authors
from dmphn_core.authors import resolve_model_alias
from dmphn_core.checkpoint import DEMO_CHECKPOINT, load_checkpoint
from dmphn_core.data.camera_shake import ShakeSettings, camera_path, shake
from dmphn_core.errors import DMPHNError
from dmphn_core.fileio import strict_json, write_text_atomic
from dmphn_core.geometry import pad_to_block
from dmphn_core.imageio import image_to_tensor, read_image, write_image
from dmphn_core.inference import deblur_image
from dmphn_core.metrics import psnr, ssim
from dmphn_core.samples import photo_path

app = new_app(__doc__.splitlines()[0].removeprefix("dmphn-demo: "))
console = Console()


#: Runtimes the demo always times; COMPILED_RUNTIMES only with --all-runtimes (minutes of compiling).
QUICK_RUNTIMES = ("torch", "torch-ref", "torchscript", "ort", "ov")
COMPILED_RUNTIMES = ("aoti", "compile")

def _runtimes_side_by_side(
    model, blurred: np.ndarray, out: Path, iters: int, runtime_keys: tuple[str, ...]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Export (verified) what ``runtime_keys`` need at the padded size; parity and latency of each, same input."""
    from benchmarks.timing import time_runner
    from export.exporter import export_verified, exporter_for
    from export.verify import reference_runner
    from runtimes import runner_class
    from runtimes.compare import run_and_compare

    x, _ = pad_to_block(image_to_tensor(blurred), model.geometry)
    _, _, height, width = x.shape
    log: list[str] = []
    runners = []
    for key in runtime_keys:
        cls = runner_class(key)
        reason = cls.unavailable_reason("cpu", "fp32")
        if reason:  # an optional runtime (e.g. OpenVINO) missing here: the others still compare
            log.append(f"skip {key}: {reason}")
            continue
        if cls.artifact_format == "checkpoint":
            runners.append(cls(model))
            continue
        path = out / f"dmphn_{height}x{width}{exporter_for(cls.artifact_format).suffix}"
        export_verified(cls.artifact_format, model, path, batch=1, height=height, width=width, log=log.append)
        runners.append(cls(path))
    rows = []
    with contextlib.ExitStack() as active:  # activated once: compiling runtimes compile once for both passes
        for runner in runners:
            active.enter_context(runner)
        results = run_and_compare(runners, [("blurred photo", x.numpy())], reference_runner(model))
        for runner, result in zip(runners, results):
            stats = time_runner(runner, x, warmup=1, iters=iters)
            rows.append({"runtime": runner.runtime, "runner": runner.name, "shape": f"1x3x{height}x{width}",
                         "max_abs": result.comparison.max_abs, "psnr_db": result.comparison.psnr_db,
                         "parity": result.comparison.passed, "p50_ms": stats.p50_ms, "min_ms": stats.min_ms})
    reference_ms = next((r["p50_ms"] for r in rows if r["runtime"] == "torch-ref"), None)
    for row in rows:
        # one level = one patch: the per-patch reference is the same computation, the ratio only noise
        same = model.geometry.num_levels == 1
        row["speedup_vs_per_patch"] = None if same or reference_ms is None else reference_ms / row["p50_ms"]
    return rows, log


def parse_crop(text: str | None) -> tuple[int, int] | None:
    """``"64x128"`` (H x W) -> ``(64, 128)``; None stays None."""
    if text is None:
        return None
    try:
        height, width = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise DMPHNError(f"--crop must look like HEIGHTxWIDTH (e.g. 64x128), got {text!r}") from None
    if height < 16 or width < 16:
        raise DMPHNError(f"--crop must be at least 16x16, got {text!r}")
    return height, width


def checkpoint_note(checkpoint_path: Path, gain_db: float, real_model_command: str) -> str:
    """One line: the shipped model is small (from the checkpoint itself), and the command that shows the real one."""
    checkpoint = load_checkpoint(checkpoint_path)
    levels = checkpoint.config.levels
    device = str((checkpoint.training or {}).get("device", "cpu")).upper()
    return (f"note: the shipped {checkpoint.config.name} is a small demo model ({levels} level{'s' if levels > 1 else ''}, "
            f"{device}-trained on a dozen bundled photos; {gain_db:+.2f} dB here), so its picture barely changes; "
            f"the authors' GoPro model on their real blurred frames: {real_model_command}")


def real_model_command(cache: Path | None) -> str:
    """How this demo was started, with ``--model authors``: the exact command to run next."""
    program = Path(sys.argv[0])
    shown = str(program) if program.name == "dmphn-demo" else "dmphn-demo"  # python -m cli.demo: the installed name
    return f"{shown} --model authors" + (f" --cache {cache}" if cache is not None else "")


def _markdown(report: dict[str, Any]) -> str:
    quality = report["quality"]
    lines = [
        f"# dmphn-demo — {report['model']} on {report['photo']} ({report['size'][1]}x{report['size'][0]} WxH)",
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
    if report.get("note"):
        note = report["note"].removeprefix("note: ")
        lines += ["", note[:1].upper() + note[1:]]
    if report.get("runtimes"):
        lines += ["", "| runtime | shape | max abs vs PyTorch | parity (fp32 ≤ 1e-4) | p50 ms | min ms | × per-patch |",
                  "| --- | --- | ---: | --- | ---: | ---: | ---: |"]
        lines += [f"| {r['runner']} | {r['shape']} | {r['max_abs']:.2e} | {'pass' if r['parity'] else 'FAIL'} | "
                  f"{r['p50_ms']:.1f} | {r['min_ms']:.1f} | {_ratio(r)} |" for r in report["runtimes"]]
        lines += ["", report["runtimes_note"]]
    return "\n".join(lines) + "\n"


def _ratio(row: dict[str, Any]) -> str:
    return "n/a" if row["speedup_vs_per_patch"] is None else f"{row['speedup_vs_per_patch']:.2f}"


@app.command()
@user_errors
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for images, exported models and the report")] = Path("dmphn-demo"),
    photo: Annotated[Path | None, typer.Option(help="a sharp photo of your own (default: bundled rocket.jpg)")] = None,
    checkpoint: Annotated[Path | None, typer.Option("--checkpoint", "--model", "-c", help="checkpoint, or 'authors' / 'authors-1-2-4': the authors' GoPro weights on one of their real blurred GoPro frames (fetched once, sha256-checked) (default: the shipped demo model)")] = None,
    frame: Annotated[str, typer.Option(help="with --model authors: which of their blurred test frames")] = DEFAULT_FRAME,
    base_url: Annotated[str, typer.Option(help="with --model authors: where their files are (a mirror URL or a local copy)")] = authors.DEFAULT_BASE_URL,
    max_shift: Annotated[float, typer.Option(help="camera path length in pixels")] = 24.0,
    seed: Annotated[int, typer.Option(help="seed of the camera path")] = 0,
    runtimes: Annotated[bool | None, typer.Option("--runtimes/--no-runtimes", help="export and compare runtimes (the shipped model only)", show_default="runtimes")] = None,
    all_runtimes: Annotated[bool, typer.Option("--all-runtimes", help="also AOTInductor and torch.compile (minutes of compiling)")] = False,
    crop: Annotated[str | None, typer.Option(help="run on a centre crop HxW of the photo or frame (e.g. 64x128: a quick check)")] = None,
    iters: Annotated[int, typer.Option(help="timed runs per runtime")] = 3,
    threads: Annotated[int | None, typer.Option(help="CPU threads (default: torch's choice)")] = None,
    runtime: Annotated[str, typer.Option(help=runtime_help() + " (the deblur step)", show_default="auto")] = "auto",
    cache: Annotated[Path | None, typer.Option(help="cache folder: verified artifacts (artifacts/) and the authors' files (authors/)", show_default="$DMPHN_CACHE or ~/.cache/dmphn")] = None,
    precision: Annotated[str | None, typer.Option(help=auto_precision_help() + " (the deblur step)", show_default="fp32")] = None,
    min_psnr: MinPsnrOpt = None,
) -> None:
    """Blur, deblur, score, export and compare runtimes; print a summary and write a report.
    With --model authors: the authors' GoPro weights on one of their real blurred frames."""
    from export.auto import runner_for_request

    crop_hw = parse_crop(crop)
    if iters < 1:
        raise DMPHNError(f"--iters must be at least 1, got {iters}")
    if threads is not None:
        if threads < 1:
            raise DMPHNError(f"--threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)
    if checkpoint is not None and str(checkpoint) in authors.MODEL_ALIASES and not checkpoint.exists():
        if runtimes:
            raise DMPHNError("--runtimes compares runtimes on the shipped model's photo; with the authors' weights use "
                             "dmphn-parity / dmphn-bench (docs/authors.md)")
        run_authors_demo(str(checkpoint), frame=frame, base_url=base_url, cache=cache, out=out, crop_hw=crop_hw,
                         runtime=runtime, precision=precision, min_psnr=min_psnr, say=lambda line: console.print(line, markup=False, highlight=False, soft_wrap=True))
        return
    runtimes = True if runtimes is None else runtimes
    begin = time.perf_counter()
    checkpoint = resolve_model_alias(checkpoint, cache)
    checkpoint_path = checkpoint or DEMO_CHECKPOINT
    if checkpoint is None and not DEMO_CHECKPOINT.is_file():
        raise DMPHNError(f"the shipped demo checkpoint is missing ({DEMO_CHECKPOINT}); pass --checkpoint")
    model = load_checkpoint(checkpoint_path).build_model()
    photo_file = photo or photo_path("rocket.jpg")
    sharp = read_image(photo_file)
    if crop_hw is not None:
        sharp = centre_crop(sharp, *crop_hw)
    out.mkdir(parents=True, exist_ok=True)

    settings = ShakeSettings(max_shift=max_shift)
    rng = np.random.default_rng(seed)
    blurred = shake(sharp, camera_path(rng, settings), settings, rng)["blur_gamma"]
    with runner_for_request(checkpoint_path, runtime, "cpu", precision, min_psnr=min_psnr, cache=cache, log=console.print) as runner:
        started = time.perf_counter()
        deblurred = deblur_image(runner, blurred)
        deblur_seconds = time.perf_counter() - started
        deblur_runner = runner.name
    quality = {
        "blurred_psnr_db": psnr(blurred, sharp), "blurred_ssim": ssim(blurred, sharp),
        "deblurred_psnr_db": psnr(deblurred, sharp), "deblurred_ssim": ssim(deblurred, sharp),
    }
    quality["gain_db"] = quality["deblurred_psnr_db"] - quality["blurred_psnr_db"]
    quality["ssim_gain"] = quality["deblurred_ssim"] - quality["blurred_ssim"]
    for name, image in (("sharp", sharp), ("blurred", blurred), ("deblurred", deblurred)):
        write_image(out / f"{name}.png", image)
    labels = (f"blurred  {quality['blurred_psnr_db']:.2f} dB",
              f"deblurred  {quality['deblurred_psnr_db']:.2f} dB ({quality['gain_db']:+.2f})",
              "sharp (target)")
    write_image(out / "blurred_deblurred_sharp.png", comparison_picture(blurred, deblurred, sharp, labels))
    console.print(f"{model.config.name} deblurred {photo_file.name} ({sharp.shape[1]}x{sharp.shape[0]} WxH) in "
                  f"{deblur_seconds:.2f}s: PSNR {quality['blurred_psnr_db']:.2f} -> {quality['deblurred_psnr_db']:.2f} dB "
                  f"({quality['gain_db']:+.2f}), SSIM {quality['blurred_ssim']:.4f} -> {quality['deblurred_ssim']:.4f}")
    note = (checkpoint_note(checkpoint_path, quality["gain_db"], real_model_command(cache))
            if checkpoint is None else None)
    if note:
        console.print(note, markup=False, highlight=False, soft_wrap=True)

    report: dict[str, Any] = {
        "model": model.config.name, "checkpoint": str(checkpoint_path), "photo": photo_file.name,
        "size": list(sharp.shape[:2]), "blur": {"max_shift": max_shift, "subframes": settings.subframes, "seed": seed},
        "quality": quality, "deblur_seconds": deblur_seconds, "deblur_runner": deblur_runner, "threads": torch.get_num_threads(),
        "crop_hw": list(crop_hw) if crop_hw else None, "note": note,
    }
    if runtimes:
        keys = QUICK_RUNTIMES + (COMPILED_RUNTIMES if all_runtimes else ())
        rows, log = _runtimes_side_by_side(model, blurred, out, iters, keys)
        for line in log:
            console.print(line)
        report["runtimes"] = rows
        report["runtimes_note"] = (
            "Timed: " + ", ".join(keys) + "." + ("" if all_runtimes else
            " Not timed: aoti, compile — compiling them takes minutes on a small CPU; add --all-runtimes, "
            "or run dmphn-bench --runtime all.")
            + (" × per-patch is n/a: a one-level model has one patch, so the per-patch reference runs the same "
               "computation." if model.geometry.num_levels == 1 else ""))
        table = Table(title=f"runtimes on the same input ({rows[0]['shape']}, CPU, {torch.get_num_threads()} threads)")
        for column in ("runtime", "max abs vs PyTorch", "parity", "p50 ms", "× per-patch"):
            table.add_column(column, justify="left" if column in ("runtime", "parity") else "right")
        for r in rows:
            table.add_row(r["runner"], f"{r['max_abs']:.2e}", "pass" if r["parity"] else "FAIL", f"{r['p50_ms']:.1f}",
                          _ratio(r))
        console.print(table)
        console.print(report["runtimes_note"], markup=False, highlight=False)
    report["seconds"] = time.perf_counter() - begin
    write_text_atomic(out / "report.json", strict_json(report, indent=2))
    write_text_atomic(out / "report.md", _markdown(report))
    console.print(f"wrote {out}/: sharp.png, blurred.png, deblurred.png, blurred_deblurred_sharp.png, report.json, report.md"
                  + (", the exported models" if runtimes else "") + f" ({report['seconds']:.0f}s)")
    if runtimes and not all(r["parity"] for r in report["runtimes"]):
        raise DMPHNError("a runtime disagreed with PyTorch beyond fp32 tolerance (see the table)")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
