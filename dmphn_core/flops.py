"""Count the model's arithmetic at a given input shape (for roofline ratios in benchmarks)."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from .model import DMPHN, DMPHNConfig


def count_flops(config: DMPHNConfig, batch: int, height: int, width: int) -> int:
    """FLOPs (2 per multiply-add) of one forward pass, counted by tracing on the meta device.

    Only convolutions and transposed convolutions are counted (as PyTorch's counter does);
    the additions of residual skips and patch joins are < 0.1% of the total.
    """
    with torch.device("meta"):
        model = DMPHN(config)
        x = torch.empty(batch, 3, height, width)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return int(counter.get_total_flops())
