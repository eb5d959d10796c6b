"""Training settings, the loss and the learning-rate schedule (pure functions of the step)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import DMPHNError
from ..model import DMPHNConfig

SCHEDULES = ("cosine", "step", "constant")
STARTS = ("authors", "identity")
LOSSES = ("mse", "psnr")
AMP_MODES = ("auto", "off", "bf16", "fp16")


class TrainingInterrupted(DMPHNError):
    """Ctrl-C during training; the checkpoint was saved first."""


@dataclass
class TrainConfig:
    data: str
    out: str = "runs/train"
    levels: str = "1-2-4-8"
    layout: str = "design"
    blur_kind: str = "blur_gamma"
    batch: int = 6
    crop: int = 256
    lr: float = 1e-4
    steps: int = 3000
    #: cosine: to ``min_lr_ratio * lr``; step: halve at 50% and 75%; constant.
    schedule: str = "cosine"
    min_lr_ratio: float = 0.1
    warmup_steps: int = 0
    #: Clip the gradient norm to this (None: no clipping, as in the paper).
    clip_grad: float | None = None
    val_every: int = 500
    val_images: int = 16
    #: Split that picks best.pt: "auto" is val/ when the data has one, else test/ (GoPro has none).
    val_split: str = "auto"
    ckpt_every: int = 500
    log_every: int = 10
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    channels_last: bool = True
    workers: int = 2
    max_minutes: float | None = None
    resume: str | None = None
    #: Start from these weights (a new run: step 0, fresh optimizer).
    init: str | None = None
    #: Starting point without --init: "authors" (random, the paper's) or "identity"
    #: (:func:`dmphn_core.model.init_identity`: the network starts as a pass-through).
    start: str = "authors"
    #: "mse" (the paper's) or "psnr" (see :func:`training_loss`).
    loss: str = "mse"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise DMPHNError(f"unknown schedule {self.schedule!r}; use one of {', '.join(SCHEDULES)}")
        if self.amp not in AMP_MODES:
            raise DMPHNError(f"unknown amp mode {self.amp!r}; use one of {', '.join(AMP_MODES)}")
        for name in ("batch", "crop", "steps", "val_every", "ckpt_every", "log_every"):
            if getattr(self, name) < 1:
                raise DMPHNError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise DMPHNError(f"lr must be positive, got {self.lr}")
        if self.resume and self.init:
            raise DMPHNError("give either --resume (continue a run) or --init (new run from weights), not both")
        if self.start not in STARTS:
            raise DMPHNError(f"unknown start {self.start!r}; use one of {', '.join(STARTS)}")
        if self.loss not in LOSSES:
            raise DMPHNError(f"unknown loss {self.loss!r}; use one of {', '.join(LOSSES)}")
        DMPHNConfig(self.levels, self.layout).geometry.check_size(self.crop, self.crop)

    # Settings that must not change under --resume, or the run would not be the same run.
    RUN_IDENTITY = ("data", "levels", "layout", "blur_kind", "batch", "crop", "lr", "steps", "schedule",
                    "min_lr_ratio", "warmup_steps", "clip_grad", "seed", "start", "loss")


def training_loss(output: torch.Tensor, sharp: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """Loss of (B, 3, H, W) batches.

    "mse" is one mean over the batch, so pairs weigh by the size of their error and nearly
    sharp (flat or barely blurred) pairs hardly count. "psnr" is the mean over pairs of
    10·log10(MSE), minus the mean PSNR that evaluation reports: every pair's dB counts alike.
    """
    if kind == "mse":
        return nn.functional.mse_loss(output, sharp)
    # Not metrics.batch_psnr: its clamp to [0, 1] would zero the gradient of out-of-range outputs.
    per_pair = (output - sharp).square().flatten(1).mean(dim=1)
    return 10.0 * torch.log10(per_pair + 1e-10).mean()  # 1e-10: a perfect pair is 100 dB, not inf


def lr_at(step: int, config: TrainConfig) -> float:
    """Learning rate for ``step`` (0-based): a pure function, so resume needs no scheduler state."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if config.schedule == "constant":
        return config.lr
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    if config.schedule == "step":
        return config.lr * (0.5 ** sum(progress >= mark for mark in (0.5, 0.75)))
    floor = config.lr * config.min_lr_ratio
    return floor + 0.5 * (config.lr - floor) * (1 + math.cos(math.pi * min(progress, 1.0)))


@dataclass
class TrainResult:
    step: int
    last_checkpoint: Path
    best_checkpoint: Path | None
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)
    validations: list[dict[str, Any]] = field(default_factory=list)
