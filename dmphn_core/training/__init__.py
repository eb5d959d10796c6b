"""Training: MSE on the level-1 output, Adam, random crops, periodic validation, exact resume.

Defaults follow the paper: MSE loss, Adam at lr 1e-4, batch 6, 256x256 crops. One process,
or several under ``torchrun`` (DistributedDataParallel; NCCL on CUDA, gloo on CPU), where
``batch`` stays the *global* batch and each rank takes ``batch / world`` of it.

Resuming is exact: the data a step sees is a pure function of ``(seed, step)`` (see
:mod:`dmphn_core.data.gopro`), the learning rate a pure function of the step, and the
checkpoint keeps the weights and Adam's state, so ``--resume`` continues the same run.
"""

from .config import (
    AMP_MODES,
    LOSSES,
    SCHEDULES,
    STARTS,
    TrainConfig,
    TrainingInterrupted,
    TrainResult,
    lr_at,
    training_loss,
)
from .trainer import Trainer

__all__ = [
    "AMP_MODES", "LOSSES", "SCHEDULES", "STARTS", "TrainConfig", "TrainResult", "Trainer", "TrainingInterrupted",
    "lr_at", "training_loss",
]
