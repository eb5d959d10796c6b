"""dmphn-eval: PSNR/SSIM of a model on GoPro-layout pairs, next to the blurred input's own scores.

DATA is a GoPro_Large-style root (``DATA/test/<sequence>/{blur_gamma,blur,sharp}/``), e.g. real
GoPro or the output of ``dmphn-synth``. Prints a table; ``--json`` / ``--markdown`` save it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from cli.common import MinPsnrOpt, auto_precision_help, new_app, runtime_help, user_errors
from dmphn_core.data.gopro import BLUR_KINDS, find_pairs
from dmphn_core.errors import DMPHNError
from dmphn_core.evaluate import evaluate_pairs, render_table, to_markdown, write_json
from dmphn_core.fileio import write_text_atomic
from dmphn_core.inference import DEFAULT_OVERLAP, Deblurrer
from export.auto import runner_for_request
from export.cache import CACHE_ENV

app = new_app(__doc__.splitlines()[0].removeprefix("dmphn-eval: "))


def _check_destination(path: Path | None, option: str) -> None:
    """Fail before a long evaluation, not after it, when a report cannot be written."""
    if path is None:
        return
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise DMPHNError(f"{option} {path} is a folder; give a file name")
    if not parent.is_dir():
        raise DMPHNError(f"{option} {path}: folder {parent} does not exist")


@app.command()
@user_errors
def evaluate(
    data: Annotated[Path, typer.Argument(help="dataset root in the GoPro layout")],
    split: Annotated[str, typer.Option(help="split folder under DATA")] = "test",
    blur_kind: Annotated[str, typer.Option(help=f"blurred folder: {' or '.join(BLUR_KINDS)}")] = "blur_gamma",
    model: Annotated[Path | None, typer.Option(help="checkpoint .pt or exported artifact", show_default="the demo checkpoint")] = None,
    runtime: Annotated[str, typer.Option(help=runtime_help(), show_default="auto: the fastest verified runtime here for a checkpoint; an artifact's own")] = "auto",
    cache: Annotated[Path | None, typer.Option(help="folder of cached verified artifacts", show_default=f"${CACHE_ENV} or ~/.cache/dmphn/artifacts")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    precision: Annotated[str | None, typer.Option(help=auto_precision_help(), show_default="fp32; an engine's own")] = None,
    min_psnr: MinPsnrOpt = None,
    tile: Annotated[int | None, typer.Option(help="run in tiles of N x N pixels")] = None,
    overlap: Annotated[int, typer.Option(help="pixels shared by neighbouring tiles")] = DEFAULT_OVERLAP,
    limit: Annotated[int | None, typer.Option(help="evaluate the first N pairs only")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the results as JSON")] = None,
    markdown: Annotated[Path | None, typer.Option(help="write the table as markdown")] = None,
) -> None:
    """Deblur every pair's blurred image and compare it and the input with the sharp image."""
    _check_destination(json_out, "--json")
    _check_destination(markdown, "--markdown")
    pairs = find_pairs(data, split, blur_kind)
    if limit is not None and limit < 1:
        raise DMPHNError(f"--limit must be at least 1, got {limit}")
    pairs = pairs[:limit] if limit else pairs
    runner = runner_for_request(model, runtime, device, precision, min_psnr=min_psnr, cache=cache)
    console = Console()
    if not console.is_terminal:  # logs and pipes: do not fold the table at rich's default 80 columns
        console = Console(width=160)
    progress_console = Console(file=sys.stderr)
    with runner:
        deblurrer = Deblurrer(runner, tile=tile, overlap=overlap)
        progress = Progress(
            TextColumn("evaluating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            console=progress_console, transient=True, disable=not progress_console.is_terminal,
        )
        with progress:
            task = progress.add_task("pairs", total=len(pairs))
            result = evaluate_pairs(
                deblurrer, pairs, on_image=lambda _: progress.advance(task),
                dataset={"root": str(data), "split": split, "blur_kind": blur_kind},
            )
    console.print(render_table(result))
    summary = result["summary"]
    print(
        f"{summary['images']} image(s): PSNR {summary['psnr_blurred']:.2f} -> {summary['psnr_deblurred']:.2f} dB "
        f"({summary['gain_db']:+.2f} dB), SSIM {summary['ssim_blurred']:.4f} -> {summary['ssim_deblurred']:.4f}, "
        f"{summary['seconds_per_image']:.3f} s per image"
    )
    if json_out is not None:
        write_json(result, json_out)
        print(f"wrote {json_out}")
    if markdown is not None:
        write_text_atomic(markdown, to_markdown(result))
        print(f"wrote {markdown}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
