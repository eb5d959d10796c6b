"""dmphn-deblur: deblur image files or folders with a checkpoint or any exported artifact.

Fast by default: with a checkpoint, ``--runtime auto`` runs the fastest verified fp32 runtime
installed here (measured by ``dmphn-bench --record``, else the declared order) from a per-user
cache of exported, verified static artifacts (one per image size; ``--cache``, ``$DMPHN_CACHE``),
and says which in one line; ``--precision auto --min-psnr DB`` lets it pick a reduced precision
verified to stay within DB of fp32 (export.auto, docs/auto.md).
``--runtime torch`` is the static-shape eager model: the reference for parity, not a fast path
(on a 2-core CPU it is 0.78x the per-patch eager ``torch-ref`` at 720p; docs/benchmarks.md).

Output: ``-o OUT.png`` when there is exactly one input file; otherwise a folder (default
``deblurred/``) that receives each input under its own name with ``--suffix`` (``.png``).
Input files are never overwritten. A file that cannot be read (missing, truncated or corrupt
PNG/JPEG, any decoder failure, over the pixel limit ``--max-pixels``) is reported as one
``error: ...`` line and skipped; the others are still deblurred; the exit code is 1 when any file
failed (docs/reliability.md). Outputs keep the
input's form where the output suffix allows: grey stays grey, alpha is kept unchanged, 16-bit
stays 16-bit (PNG, TIFF); a ``note:`` line says what a suffix could not keep. Sizes print as
width x height.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import torch
import typer

from cli.common import DEFAULT_OUTPUT_FOLDER, MinPsnrOpt, auto_precision_help, new_app, runtime_help, user_errors
from dmphn_core.authors import resolve_model_alias
from dmphn_core.errors import DMPHNError
from dmphn_core.imagecheck import DEFAULT_MAX_PIXELS, MAX_PIXELS_ENV
from dmphn_core.imagecheck import max_pixels as check_max_pixels
from dmphn_core.imageio import IMAGE_SUFFIXES, list_images, read_image_and_format, write_image
from dmphn_core.inference import DEFAULT_OVERLAP, Deblurrer, TilePlan
from export.auto import runner_for_request
from export.cache import CACHE_ENV

app = new_app(__doc__.splitlines()[0].removeprefix("dmphn-deblur: "))



def collect_inputs(inputs: list[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Image files named or found in the named folders, and ``(path, why)`` for missing ones."""
    files: list[Path] = []
    missing: list[tuple[Path, str]] = []
    for path in inputs:
        if path.is_dir():
            found = list_images(path)
            if not found:
                print(f"warning: no images ({', '.join(IMAGE_SUFFIXES)}) in folder {path}", file=sys.stderr)
            files += found
        elif path.is_file():
            files.append(path)
        else:
            missing.append((path, "no such file or folder"))
    return files, missing


def plan_outputs(files: list[Path], inputs: list[Path], output: Path | None, suffix: str) -> tuple[list[tuple[Path, Path]], Path | None]:
    """``(source, destination)`` per file, and the folder to create (None for a single output file).

    Refuses (DMPHNError) to overwrite an input or to write two inputs to one name.
    """
    if not suffix.startswith("."):
        suffix = "." + suffix
    if suffix.lower() not in IMAGE_SUFFIXES:
        raise DMPHNError(f"--suffix {suffix} is not an image format; use one of {', '.join(IMAGE_SUFFIXES)}")
    single_file = len(inputs) == 1 and inputs[0].is_file()
    looks_like_file = output is not None and output.suffix != "" and not output.is_dir()
    if looks_like_file and output.suffix.lower() in IMAGE_SUFFIXES:
        if not single_file:
            raise DMPHNError(f"-o {output} is an image file name, but there are several inputs; give a folder")
        jobs, folder = [(files[0], output)], None
    elif looks_like_file and single_file:
        raise DMPHNError(f"-o {output}: {output.suffix} is not an image format we write; use one of {', '.join(IMAGE_SUFFIXES)}")
    else:
        folder = output or DEFAULT_OUTPUT_FOLDER
        if folder.exists() and not folder.is_dir():
            raise DMPHNError(f"-o {folder} exists and is not a folder")
        jobs = [(file, folder / (file.stem + suffix)) for file in files]
    sources = {file.resolve() for file in files}
    targets: dict[Path, Path] = {}
    for source, destination in jobs:
        resolved = destination.resolve()
        if resolved in sources:
            raise DMPHNError(f"refusing to overwrite input file {source} with its output; choose another -o or --suffix")
        if resolved in targets:
            raise DMPHNError(f"{targets[resolved]} and {source} would both be written to {destination}; deblur them into separate folders")
        targets[resolved] = source
    return jobs, folder


class ProgressBar:
    """Images done, tiles done and s/image on a terminal (stderr); nothing when it is not a TTY."""

    def __init__(self, images: int) -> None:
        self.progress = None
        if sys.stderr.isatty() and images > 0:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[note]}"), console=Console(stderr=True), transient=True)
            self.images = self.progress.add_task("images", total=images, note="")
            self.tile_task = self.progress.add_task("tiles", total=None, note="", visible=False)
        self.seconds = 0.0
        self.done = 0

    def __enter__(self) -> "ProgressBar":
        if self.progress is not None:
            self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def next_image(self, name: str) -> None:
        if self.progress is not None:
            self.progress.update(self.tile_task, completed=0, total=None, visible=False)
            self.progress.update(self.images, note=name)

    def tiles(self, done: int, total: int) -> None:
        if self.progress is not None and total > 1:
            self.progress.update(self.tile_task, completed=done, total=total, visible=True)

    def image_done(self, seconds: float) -> None:
        self.done += 1
        self.seconds += seconds
        if self.progress is not None:
            self.progress.update(self.images, advance=1, note=f"{self.seconds / self.done:.2f} s/image")

    def print(self, line: str) -> None:
        """A result line: through the bar's console on a terminal (so the bar is not torn), else stdout."""
        if self.progress is not None:
            self.progress.console.print(line, markup=False, highlight=False)
        else:
            print(line)


def _size(height: int, width: int) -> str:
    return f"{width}x{height}"


def describe_plan(plan: TilePlan) -> str:
    """The tile plan in width x height, as image sizes are usually read."""
    if plan.is_whole:
        return "whole image" if plan.padded_hw == plan.image_hw else f"padded to {_size(*plan.padded_hw)}"
    return f"{plan.count} tiles of {_size(*plan.tile_hw)}, overlap {_size(*plan.overlap_hw)}"


def _report_failure(source: Path, exc: BaseException) -> None:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # most messages already name the file; say it once
    print(f"error: {message}" if str(source) in message else f"error: {source}: {message}", file=sys.stderr)


@app.command()
@user_errors
def deblur(
    inputs: Annotated[list[Path], typer.Argument(help="image files and/or folders of images")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="output image (one input) or folder", show_default="./deblurred/")] = None,
    model: Annotated[Path | None, typer.Option(help="checkpoint .pt, TorchScript .ts, .onnx, AOTInductor .pt2, TensorRT .engine, OpenVINO .xml, or 'authors' / 'authors-1-2-4' (their GoPro weights, after `dmphn-ckpt fetch-authors`)", show_default="the demo checkpoint")] = None,
    runtime: Annotated[str, typer.Option(help=runtime_help(), show_default="auto: the fastest verified runtime here for a checkpoint; an artifact's own")] = "auto",
    cache: Annotated[Path | None, typer.Option(help="cache folder: verified artifacts, the authors' weights", show_default=f"${CACHE_ENV} or ~/.cache/dmphn")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    precision: Annotated[str | None, typer.Option(help=auto_precision_help(), show_default="fp32; an engine's own")] = None,
    min_psnr: MinPsnrOpt = None,
    tile: Annotated[int | None, typer.Option(help="run in tiles of N x N pixels (large frames, little memory)")] = None,
    overlap: Annotated[int, typer.Option(help="pixels shared by neighbouring tiles")] = DEFAULT_OVERLAP,
    suffix: Annotated[str, typer.Option(help="file type of images written into a folder")] = ".png",
    fps: Annotated[float | None, typer.Option(help="video: frame rate of a folder of frames written as -o NAME.mp4 (or a video's, overriding its own)")] = None,
    batch: Annotated[int, typer.Option(help="video: frames per runner call (runtimes that gain from a batch, e.g. torch)")] = 1,
    max_pixels: Annotated[int | None, typer.Option(help="refuse images larger than this (width x height), read from the header before decoding", show_default=f"${MAX_PIXELS_ENV} or {DEFAULT_MAX_PIXELS:,}")] = None,
) -> None:
    """Deblur each image and write it; prints one line per image and a summary.

    With a checkpoint, --runtime auto (the default) runs the fastest verified fp32 runtime here from
    cached static exports and names it; --precision auto --min-psnr DB the fastest runtime and
    precision verified to stay within DB of fp32. --runtime torch is the static-shape eager reference used for
    parity, not the fast path: on the CPU it is slower than the per-patch torch-ref (0.78x at 720p).
    """
    check_max_pixels(max_pixels)  # a bad --max-pixels / $DMPHN_MAX_PIXELS is one error, not one per file
    from cli.deblur_video import deblur_video, is_video_job  # video in or out: its own module

    if is_video_job(inputs, output):
        runner = runner_for_request(resolve_model_alias(model, cache), runtime, device, precision, min_psnr=min_psnr, cache=cache)
        return deblur_video(inputs, output, runner, fps=fps, batch=batch, tile=tile, overlap=overlap)
    files, failures = collect_inputs(inputs)  # inputs first: a typo fails before any runtime line or export
    for path, why in failures:
        print(f"error: {path}: {why}", file=sys.stderr)
    if not files:
        if failures:
            raise typer.Exit(1)
        raise DMPHNError("no images to deblur in " + ", ".join(str(p) for p in inputs))
    jobs, folder = plan_outputs(files, inputs, output, suffix)
    runner = runner_for_request(resolve_model_alias(model, cache), runtime, device, precision, min_psnr=min_psnr, cache=cache)
    failed = len(failures)
    done = 0
    seconds = 0.0
    with runner, ProgressBar(len(jobs)) as bar:
        deblurrer = Deblurrer(runner, tile=tile, overlap=overlap)
        deblurrer.on_tiles = bar.tiles
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        for source, destination in jobs:
            bar.next_image(source.name)
            image = None
            try:
                image, source_format = read_image_and_format(source, max_pixels=max_pixels)
                plan = deblurrer.plan(*image.shape[:2])
                begin = time.perf_counter()
                result = deblurrer.deblur(image, clamp=True)
                runner.synchronize()
                elapsed = time.perf_counter() - begin
                notes = write_image(destination, result, like=source_format)
            except (DMPHNError, ValueError, OSError) as exc:
                _report_failure(source, exc)
                failed += 1
                continue
            except (torch.OutOfMemoryError, MemoryError):
                size = f" at {_size(*image.shape[:2])} (WxH)" if image is not None else ""
                _report_failure(source, DMPHNError(f"out of memory{size}; try --tile 512"))
                failed += 1
                continue
            done += 1
            seconds += elapsed
            bar.print(f"{source} -> {destination} ({_size(*image.shape[:2])} WxH, {source_format.describe()}, "
                      f"{describe_plan(plan)}, {elapsed:.2f} s)")
            bar.image_done(elapsed)
            for note in notes:
                print(f"note: {destination}: {note}", file=sys.stderr)
    per_image = f", {seconds / done:.2f} s per image" if done else ""
    print(f"deblurred {done} of {done + failed} image(s) with {runner.name}{per_image}"
          + (f"; {failed} failed" if failed else "") + (f" -> {folder}" if folder is not None and done else ""))
    if failed:
        raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
