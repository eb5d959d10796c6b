"""dmphn-ckpt: inspect checkpoints and import the authors' per-level files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import torch
import typer

from cli.common import new_app, user_errors
from dmphn_core.checkpoint import DEMO_CHECKPOINT, import_authors_checkpoint, load_checkpoint, save_checkpoint
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
    save_checkpoint(output, ckpt.build_model(), training=ckpt.training)
    print(f"wrote {output} ({ckpt.config.name}, {layout} layout)")


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
