"""Reference DMPHN (Zhang et al., CVPR 2019) with static-shape patching.

Each level folds its patches into the batch dimension (see :mod:`dmphn_core.geometry`),
so its encoder and decoder each run once on B·N patches. There are no Python lists of
tensors and no data-dependent chunking, so the graph exports with static shapes.

Input and output are RGB in [0, 1], layout (B, 3, H, W). Internally the image is shifted
to [-0.5, 0.5] as in the authors' code, so their weights import unchanged. The output is
not clamped (training needs the gradient); clamp when writing images.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import math

import torch
from torch import nn

from .geometry import Geometry, merge_patches, parse_levels, split_patches

FEATURE_CHANNELS = (32, 64, 128)
IMAGE_CHANNELS = 3


class ResBlock(nn.Module):
    """conv3x3-ReLU-conv3x3 plus identity skip; (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


class Encoder(nn.Module):
    """(B, 3, H, W) -> (B, 128, H/4, W/4)."""

    def __init__(self) -> None:
        super().__init__()
        c1, c2, c3 = FEATURE_CHANNELS
        self.layers = nn.Sequential(
            nn.Conv2d(IMAGE_CHANNELS, c1, 3, padding=1),
            ResBlock(c1),
            ResBlock(c1),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1),
            ResBlock(c2),
            ResBlock(c2),
            nn.Conv2d(c2, c3, 3, stride=2, padding=1),
            ResBlock(c3),
            ResBlock(c3),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class Decoder(nn.Module):
    """(B, 128, h, w) -> (B, 3, 4h, 4w)."""

    def __init__(self) -> None:
        super().__init__()
        c1, c2, c3 = FEATURE_CHANNELS
        self.layers = nn.Sequential(
            ResBlock(c3),
            ResBlock(c3),
            nn.ConvTranspose2d(c3, c2, 4, stride=2, padding=1),
            ResBlock(c2),
            ResBlock(c2),
            nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1),
            ResBlock(c1),
            ResBlock(c1),
            nn.Conv2d(c1, IMAGE_CHANNELS, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


@dataclass(frozen=True)
class DMPHNConfig:
    """What a checkpoint must record to rebuild the network."""

    levels: int = 4
    layout: str = "design"

    def __post_init__(self) -> None:
        object.__setattr__(self, "levels", parse_levels(self.levels))
        self.geometry  # validates the layout

    @property
    def geometry(self) -> Geometry:
        return Geometry(self.levels, self.layout)

    @property
    def name(self) -> str:
        return f"DMPHN-{self.geometry.name}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "DMPHNConfig":
        unknown = set(data) - {"levels", "layout"}
        if unknown:
            raise ValueError(f"unknown DMPHN config keys: {sorted(unknown)}")
        return cls(**data)


class DMPHN(nn.Module):
    """Deep Stacked Hierarchical Multi-patch Network; (B, 3, H, W) -> (B, 3, H, W).

    ``encoders[i]`` / ``decoders[i]`` belong to level ``i + 1``. H and W must fit
    ``config.geometry.size_block``; :func:`dmphn_core.geometry.pad_to_block` pads others.
    """

    def __init__(self, config: DMPHNConfig | None = None) -> None:
        super().__init__()
        self.config = config or DMPHNConfig()
        self.geometry = self.config.geometry
        self.encoders = nn.ModuleList(Encoder() for _ in range(self.config.levels))
        self.decoders = nn.ModuleList(Decoder() for _ in range(self.config.levels))
        self.apply(_init_conv)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != IMAGE_CHANNELS:
            raise ValueError(f"{self.config.name} expects (B, 3, H, W) RGB input, got shape {tuple(x.shape)}")
        self.geometry.check_size(x.shape[2], x.shape[3])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        image = x - 0.5
        features: torch.Tensor | None = None
        decoded: torch.Tensor | None = None
        for level in self.geometry.levels_coarse_to_fine:
            grid = self.geometry.grid(level)
            encoder_input = image if decoded is None else image + decoded
            level_features = merge_patches(self.encoders[level - 1](split_patches(encoder_input, grid)), grid)
            if features is not None:
                level_features = level_features + features
            features = level_features
            decoder_grid = self.geometry.decoder_grid(level)
            decoded = merge_patches(self.decoders[level - 1](split_patches(features, decoder_grid)), decoder_grid)
        return decoded + 0.5


def _init_conv(module: nn.Module) -> None:
    # The authors' initialisation: N(0, 0.5·sqrt(2/n)), n = k·k·out_channels, zero bias.
    # Half of He's std keeps the ~30 stacked residual additions from blowing up at start.
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        n = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
        nn.init.normal_(module.weight, 0.0, 0.5 * math.sqrt(2.0 / n))
        nn.init.zeros_(module.bias)


def dmphn(levels: int | str = 4, layout: str = "design") -> DMPHN:
    """A freshly initialised DMPHN with ``levels`` (count or paper name such as ``"1-2-4-8"``)."""
    return DMPHN(DMPHNConfig(levels=levels, layout=layout))


def dmphn_1() -> DMPHN:
    return dmphn(1)


def dmphn_1_2() -> DMPHN:
    return dmphn(2)


def dmphn_1_2_4() -> DMPHN:
    return dmphn(3)


def dmphn_1_2_4_8() -> DMPHN:
    return dmphn(4)
