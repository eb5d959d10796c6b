"""Reference DMPHN (Zhang et al., CVPR 2019) with static-shape patching.

Each level folds its patches into the batch dimension (see :mod:`dmphn_core.geometry`),
so its encoder and decoder each run once on B·N patches. There are no Python lists of
tensors and no data-dependent chunking, so the graph exports with static shapes.

Input and output are RGB in [0, 1], layout (B, 3, H, W). Internally the image is shifted
to [-0.5, 0.5] as in the authors' code, so their weights import unchanged. The output is
not clamped (training needs the gradient); clamp when writing images.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

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


def init_identity(model: DMPHN) -> DMPHN:
    """Re-initialise ``model`` in place so that it starts as the identity: output == input.

    The design has no global skip, so from a random start the network must first learn to
    reproduce the image through its 1/4-resolution bottleneck before deblurring can pay;
    on little data and compute that costs more PSNR than the deblurring gains. Here level
    1 starts as an exact pass-through: the first conv copies RGB into 3 of its 32 channels,
    each stride-2 conv packs 2x2 pixel blocks of those channels into 4x the channels
    (3 -> 12 -> 48 of 128), the transposed convs unpack them, the last conv copies them out.
    The remaining channels keep their random weights, and every residual block's second conv
    starts at zero (as torchvision's ``zero_init_residual``), so the blocks start as skips.
    Coarser levels start silent (zero features and residuals) but train normally. The
    layers themselves are unchanged: this only picks the starting point.
    """
    for module in model.modules():
        if isinstance(module, ResBlock):
            _zero(module.body[2])
    for level, (encoder, decoder) in enumerate(zip(model.encoders, model.decoders), start=1):
        enc, dec = encoder.layers, decoder.layers
        if level > 1:
            _zero(enc[6])  # the level's features
            _zero(dec[8])  # the level's residual
            continue
        with torch.no_grad():
            _copy_channels(enc[0], IMAGE_CHANNELS)
            _pack_2x2(enc[3], IMAGE_CHANNELS)
            _pack_2x2(enc[6], 4 * IMAGE_CHANNELS)
            _pack_2x2(dec[2], 4 * IMAGE_CHANNELS)
            _pack_2x2(dec[5], IMAGE_CHANNELS)
            _copy_channels(dec[8], IMAGE_CHANNELS)
    return model


def _zero(conv: nn.Module) -> None:
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)


def _copy_channels(conv: nn.Conv2d, channels: int) -> None:
    """Output channel c (< channels) = input channel c, through the 3x3 kernel's centre."""
    conv.weight[:channels].zero_()
    conv.bias[:channels].zero_()
    for c in range(channels):
        conv.weight[c, c, 1, 1] = 1.0


def _pack_2x2(conv: nn.Conv2d | nn.ConvTranspose2d, channels: int) -> None:
    """Stride-2 Conv2d (k3, p1): channel ``4c+2a+b`` at (i, j) = channel c at (2i+a, 2j+b).

    A stride-2 ConvTranspose2d (k4, p1), whose weight is laid out (in, out, kh, kw), does the
    inverse with the same entries. Either way that pixel sits at kernel tap (a+1, b+1); all
    other weights into the copied outputs are zero.
    """
    weight, copied = conv.weight, channels if isinstance(conv, nn.ConvTranspose2d) else 4 * channels
    if isinstance(conv, nn.ConvTranspose2d):
        weight[:, :copied].zero_()
    else:
        weight[:copied].zero_()
    conv.bias[:copied].zero_()
    for c in range(channels):
        for a in (0, 1):
            for b in (0, 1):
                weight[4 * c + 2 * a + b, c, a + 1, b + 1] = 1.0


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
