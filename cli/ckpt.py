"""dmphn-ckpt: inspect checkpoints and import the authors' per-level files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import torch
import typer

from cli.common import new_app, user_errors
from dmphn_core import authors
from dmphn_core.checkpoint import DEMO_CHECKPOINT, import_authors_checkpoint, load_checkpoint, save_checkpoint
from dmphn_core.errors import DMPHNError
from dmphn_core.fileio import strict_json
from dmphn_core.geometry import LAYOUTS
from dmphn_core.model import DMPHN, DMPHNConfig

app = new_app("Inspect DMPHN checkpoints and import the original authors' weights.")


@app.command()
@user_errors
def info(
    checkpoint: Annotated[Path | None, typer.Argument(help="checkpoint file (default: the shipped demo model)")] = None,
) -> None:
    """Print a checkpoint's config, size block, parameter count and training record as JSON."""
    ckpt = load_checkpoint(checkpoint or DEMO_CHECKPOINT)
    geometry = ckpt.config.geometry
    summary = {
        "model": ckpt.config.name,
        "config": ckpt.config.to_dict(),
        "size_block_hw": list(geometry.size_block),
        "patches_per_level": {level: geometry.grid(level).count for level in range(1, geometry.num_levels + 1)},
        "parameters": sum(v.numel() for v in ckpt.state_dict.values()),
        "dtype": str(next(iter(ckpt.state_dict.values())).dtype).removeprefix("torch."),
        "toolkit_version": ckpt.toolkit_version,
        "training": ckpt.training,
        "resumable": ckpt.resume is not None,
    }
    print(strict_json(summary, indent=2))


@app.command("import-authors")
@user_errors
def import_authors(
    folder: Annotated[Path, typer.Argument(help="folder with encoder_lv{1..4}.pkl and decoder_lv{1..4}.pkl")],
    output: Annotated[Path, typer.Option("-o", "--output", help="checkpoint to write")],
    layout: Annotated[str, typer.Option(help=f"patch layout: {', '.join(LAYOUTS)}")] = "authors",
) -> None:
    """Convert the original authors' per-level state dicts into one checkpoint."""
    ckpt = import_authors_checkpoint(folder, layout=layout)
    variant = authors.identify_variant(folder)
    if variant is not None:  # their pinned files byte for byte: reports can name them
        ckpt.training = {**ckpt.training, **authors.authors_record(variant, str(folder))}
    save_checkpoint(output, ckpt.build_model(), training=ckpt.training)
    known = f"; {authors.weights_label(variant)}" if variant else ""
    print(f"wrote {output} ({ckpt.config.name}, {layout} layout{known})")


def describe_missing(missing: dict[str, str]) -> str:
    """``{relative path: reason}`` as one line, by reason: ``HTTP 404 Not Found: a.png, b.png``."""
    by_reason: dict[str, list[str]] = {}
    for relative, reason in sorted(missing.items()):
        by_reason.setdefault(reason, []).append(relative)
    return "; ".join(f"{reason}: {', '.join(names)}" for reason, names in by_reason.items())


@app.command("fetch-authors")
@user_errors
def fetch_authors(
    output: Annotated[Path | None, typer.Option("-o", "--output", help="checkpoint to write (it is also kept in the cache)")] = None,
    variant: Annotated[str, typer.Option(help=f"the authors' hierarchy: {', '.join(authors.VARIANTS)}")] = authors.DEFAULT_VARIANT,
    base_url: Annotated[str, typer.Option(help="where the repository's files are (a mirror URL or a local copy); same relative paths")] = authors.DEFAULT_BASE_URL,
    cache: Annotated[Path | None, typer.Option(help="keeps the downloads (default: $DMPHN_CACHE, else $XDG_CACHE_HOME/dmphn, else ~/.cache/dmphn)")] = None,
    frames: Annotated[Path | None, typer.Option(help="also download their 20 test frames and both sets of published outputs here (after the weights)")] = None,
    timeout: Annotated[float, typer.Option(help="seconds one read may wait for the server")] = authors.DEFAULT_TIMEOUT_S,
    deadline: Annotated[float, typer.Option(help="seconds the whole fetch may take")] = authors.DEFAULT_DEADLINE_S,
    min_rate: Annotated[float, typer.Option(help="KiB/s below which (over 30 s) a download counts as stalled; 0: never")] = authors.DEFAULT_MIN_RATE / 1024,
) -> None:
    """Download the authors' GoPro weights at the pinned commit, check every sha256, import them;
    then, with --frames, their test frames (a missing frame is named and costs nothing else)."""
    limits = authors.DownloadLimits(timeout=timeout, deadline_s=deadline, min_rate=min_rate * 1024)
    ckpt = authors.fetch_authors(variant, output, base_url=base_url, cache=cache, limits=limits)
    cached = authors.cached_checkpoint_path(variant, cache)
    print(f"{authors.weights_label(variant)}: sha256 of every file ok; cached {cached}" + (f"; wrote {output}" if output else ""))
    alias = f" (or --model authors{'' if variant == authors.DEFAULT_VARIANT else '-' + variant})" if cache is None else ""
    print(f"use it with --model {output or cached}{alias}: {ckpt.config.name}, authors layout", flush=True)
    if frames is None:
        return
    paths, missing = authors.fetch_frames(frames, base_url=base_url, limits=limits)
    print(f"frames and published outputs: {len(paths)} of {len(paths) + len(missing)} files in {frames} (sha256 ok)")
    if missing:
        raise DMPHNError(f"{len(missing)} frame file(s) could not be fetched ({describe_missing(missing)}); the weights and "
                         f"the {len(paths)} files above are kept and usable; rerun the same command to retry the rest")


@app.command()
@user_errors
def init(
    output: Annotated[Path, typer.Option("-o", "--output", help="checkpoint to write")],
    levels: Annotated[str, typer.Option(help="hierarchy: 1, 1-2, 1-2-4 or 1-2-4-8")] = "1-2-4-8",
    layout: Annotated[str, typer.Option(help=f"patch layout: {', '.join(LAYOUTS)}")] = "design",
    seed: Annotated[int, typer.Option(help="seed of the initial weights")] = 0,
) -> None:
    """Write a freshly initialised (untrained) model: for latency benchmarks and export checks."""
    torch.manual_seed(seed)
    model = DMPHN(DMPHNConfig(levels, layout))
    save_checkpoint(output, model, training={"untrained": True, "seed": seed})
    print(f"wrote {output} ({model.config.name}, untrained, seed {seed})")


@app.command()
@user_errors
def slim(
    checkpoint: Annotated[Path, typer.Argument(help="training checkpoint (e.g. runs/train/best.pt)")],
    output: Annotated[Path, typer.Option("-o", "--output", help="checkpoint to write")],
    fp16: Annotated[bool, typer.Option("--fp16/--fp32", help="store weights as float16 (half the size)")] = True,
) -> None:
    """Drop the optimizer state and (by default) store fp16 weights: the file to ship."""
    ckpt = load_checkpoint(checkpoint)
    save_checkpoint(output, ckpt.build_model(), training=ckpt.training, dtype=torch.float16 if fp16 else torch.float32)
    print(f"wrote {output} ({output.stat().st_size / 2**20:.1f} MiB, {'fp16' if fp16 else 'fp32'} weights, no optimizer state)")


def main() -> None:
    app()
