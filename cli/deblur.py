"""dmphn-deblur: deblur image files or folders with a checkpoint or any exported artifact.

Output: ``-o OUT.png`` when there is exactly one input file; otherwise a folder (default
``deblurred/``) that receives each input under its own name with ``--suffix`` (``.png``).
Input files are never overwritten. A file that cannot be read is reported as one
``error: ...`` line and skipped; the exit code is 1 when any file failed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import torch
import typer

from dmphn_core.errors import DMPHNError
from dmphn_core.imageio import IMAGE_SUFFIXES, list_images, read_image, write_image
from dmphn_core.inference import DEFAULT_OVERLAP, Deblurrer, resolve_runner
from cli.common import new_app, user_errors

app = new_app(__doc__.splitlines()[0].removeprefix("dmphn-deblur: "))

DEFAULT_OUTPUT_FOLDER = Path("deblurred")


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


def _report_failure(source: Path, exc: BaseException) -> None:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # most messages already name the file; say it once
    print(f"error: {message}" if str(source) in message else f"error: {source}: {message}", file=sys.stderr)


@app.command()
@user_errors
def deblur(
    inputs: Annotated[list[Path], typer.Argument(help="image files and/or folders of images")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="output image (one input) or folder [default: deblurred/]")] = None,
    model: Annotated[Path | None, typer.Option(help="checkpoint .pt, TorchScript .ts, .onnx, AOTInductor .pt2 or TensorRT .engine [default: the demo checkpoint]")] = None,
    runtime: Annotated[str | None, typer.Option(help="runtime key (torch, torch-ref, torchscript, ort, trt, aoti, compile, ov) [default: from the model's suffix]")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    precision: Annotated[str | None, typer.Option(help="fp32, tf32, fp16, bf16 or int8 (an int8 OpenVINO IR) [default: fp32; an engine's own]")] = None,
    tile: Annotated[int | None, typer.Option(help="run in tiles of N x N pixels (large frames, little memory)")] = None,
    overlap: Annotated[int, typer.Option(help="pixels shared by neighbouring tiles")] = DEFAULT_OVERLAP,
    suffix: Annotated[str, typer.Option(help="file type of images written into a folder")] = ".png",
) -> None:
    """Deblur each image and write it; prints one line per image and a summary."""
    runner = resolve_runner(model, runtime, device, precision)
    files, failures = collect_inputs(inputs)
    for path, why in failures:
        print(f"error: {path}: {why}", file=sys.stderr)
    if not files:
        if failures:
            raise typer.Exit(1)
        raise DMPHNError("no images to deblur in " + ", ".join(str(p) for p in inputs))
    jobs, folder = plan_outputs(files, inputs, output, suffix)
    failed = len(failures)
    done = 0
    seconds = 0.0
    with runner:
        deblurrer = Deblurrer(runner, tile=tile, overlap=overlap)
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        for source, destination in jobs:
            image = None
            try:
                image = read_image(source)
                plan = deblurrer.plan(*image.shape[:2])
                begin = time.perf_counter()
                result = deblurrer.deblur(image, clamp=True)
                runner.synchronize()
                elapsed = time.perf_counter() - begin
                write_image(destination, result)
            except (DMPHNError, ValueError, OSError) as exc:
                _report_failure(source, exc)
                failed += 1
                continue
            except (torch.OutOfMemoryError, MemoryError):
                size = f" at {image.shape[0]}x{image.shape[1]}" if image is not None else ""
                _report_failure(source, DMPHNError(f"out of memory{size}; try --tile 512"))
                failed += 1
                continue
            done += 1
            seconds += elapsed
            print(f"{source} -> {destination} ({image.shape[0]}x{image.shape[1]}, {plan.describe()}, {elapsed:.2f} s)")
    per_image = f", {seconds / done:.2f} s per image" if done else ""
    print(f"deblurred {done} of {done + failed} image(s) with {runner.name}{per_image}"
          + (f"; {failed} failed" if failed else "") + (f" -> {folder}" if folder is not None and done else ""))
    if failed:
        raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
