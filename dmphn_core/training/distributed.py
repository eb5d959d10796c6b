"""One process or several under torchrun: process group, device and autocast choice."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import DMPHNError


@dataclass
class Distributed:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_kind: str) -> Distributed:
    """Join the torchrun process group when launched by torchrun; otherwise one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Distributed()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def resolve_device(requested: str, local_rank: int) -> torch.device:
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DMPHNError("--device cuda asked for, but there is no CUDA device here")
        return torch.device("cuda", local_rank if requested == "cuda" else int(requested.split(":")[1]))
    if requested != "cpu":
        raise DMPHNError(f"unknown device {requested!r}; use auto, cpu or cuda")
    return torch.device("cpu")


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    if device.type != "cuda" or amp == "off":
        if amp in ("bf16", "fp16") and device.type != "cuda":
            raise DMPHNError(f"--amp {amp} needs a CUDA device; training on {device.type} runs in fp32")
        return None
    # bf16 keeps fp32's range, so it needs no loss scaling: the safer automatic choice.
    return torch.float16 if amp == "fp16" else torch.bfloat16
