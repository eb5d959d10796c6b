"""dmphn-train: train DMPHN on GoPro-layout pairs (real GoPro, or `dmphn-synth` output).

Multi-GPU: ``torchrun --nproc_per_node N -m cli.train DATA ...`` (``--batch`` is
the global batch). Ctrl-C saves ``OUT/last.pt``; ``--resume OUT/last.pt`` continues the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import fail, new_app, user_errors
from dmphn_core.training import TrainConfig, Trainer, TrainingInterrupted

app = new_app(__doc__.splitlines()[0].removeprefix("dmphn-train: "))


@app.command()
@user_errors
def train(
    data: Annotated[Path, typer.Argument(help="dataset root with train/ (and val/ or test/ for validation) in the GoPro layout")],
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for last.pt, best.pt and train_log.jsonl")] = Path("runs/train"),
    levels: Annotated[str, typer.Option(help="hierarchy: 1, 1-2, 1-2-4 or 1-2-4-8")] = "1-2-4-8",
    layout: Annotated[str, typer.Option(help="patch layout: design or authors")] = "design",
    blur_kind: Annotated[str, typer.Option(help="blurred folder: blur_gamma or blur")] = "blur_gamma",
    batch: Annotated[int, typer.Option(help="global batch size")] = 6,
    crop: Annotated[int, typer.Option(help="square training crop in pixels")] = 256,
    lr: Annotated[float, typer.Option(help="Adam learning rate")] = 1e-4,
    steps: Annotated[int, typer.Option(help="optimizer steps in total")] = 3000,
    schedule: Annotated[str, typer.Option(help="cosine, step or constant")] = "cosine",
    warmup_steps: Annotated[int, typer.Option(help="linear warm-up steps")] = 0,
    clip_grad: Annotated[float | None, typer.Option(help="clip the gradient norm to this (default: no clipping)")] = None,
    val_every: Annotated[int, typer.Option(help="validate every N steps; the best validation PSNR is kept as best.pt")] = 500,
    val_images: Annotated[int, typer.Option(help="validation images (the split's first N)")] = 16,
    val_split: Annotated[str, typer.Option(help="split to validate on; auto: val/ if DATA has one, else test/")] = "auto",
    ckpt_every: Annotated[int, typer.Option(help="save last.pt every N steps")] = 500,
    log_every: Annotated[int, typer.Option(help="log loss and speed every N steps")] = 10,
    seed: Annotated[int, typer.Option(help="seed of weights and data order")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    amp: Annotated[str, typer.Option(help="auto (bf16 on CUDA), off, bf16, fp16")] = "auto",
    channels_last: Annotated[bool, typer.Option("--channels-last/--no-channels-last", help="NHWC on CUDA")] = True,
    workers: Annotated[int, typer.Option(help="data loading processes")] = 2,
    max_minutes: Annotated[float | None, typer.Option(help="stop (and save) after this many minutes")] = None,
    resume: Annotated[Path | None, typer.Option(help="continue the run saved in this checkpoint")] = None,
    init: Annotated[Path | None, typer.Option(help="start a new run from these weights")] = None,
    start: Annotated[str, typer.Option(help="without --init: authors (random, as the paper) or identity (starts as a pass-through)")] = "authors",
    loss: Annotated[str, typer.Option(help="mse (the paper's) or psnr (mean over pairs of 10·log10 MSE: nearly sharp pairs count as much as heavily blurred ones)")] = "mse",
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="a progress bar on a terminal, or plain log lines")] = True,
) -> None:
    """Train; prints validation PSNR as it goes and where the checkpoints are."""
    config = TrainConfig(
        data=str(data), out=str(out), levels=levels, layout=layout, blur_kind=blur_kind, batch=batch, crop=crop,
        lr=lr, steps=steps, schedule=schedule, warmup_steps=warmup_steps, clip_grad=clip_grad, val_every=val_every,
        val_images=val_images, val_split=val_split, ckpt_every=ckpt_every, log_every=log_every, seed=seed,
        device=device, amp=amp, channels_last=channels_last, workers=workers, max_minutes=max_minutes,
        resume=str(resume) if resume else None, init=str(init) if init else None, start=start, loss=loss, progress=progress,
    )
    trainer = Trainer(config)
    try:
        result = trainer.run()
    except TrainingInterrupted as interrupted:
        raise fail(str(interrupted), 130) from None
    if trainer.dist.is_main:
        print(f"done: step {result.step} in {result.seconds / 60:.1f} min; last {result.last_checkpoint}"
              + (f", best {result.best_checkpoint}" if result.best_checkpoint else ""))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
