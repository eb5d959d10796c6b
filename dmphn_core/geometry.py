"""Patch geometry of the DMPHN hierarchy: the one place that knows it.

Everything else (the model, the per-patch reference, exporters, the C++ metadata, the
deblur CLI) asks this module how many patches a level has, in which order they are
laid out, and which image sizes the hierarchy accepts.

Levels are numbered as in the paper: level 1 sees the whole image, level ``L`` the
most patches. Patches are ordered row-major (left to right, then top to bottom).

Two layouts exist:

* ``"design"`` (default): level 2 cuts 1x2 (left|right), level 3 cuts 2x2, level 4 cuts
  2x4. Level 4 features are joined pairwise along width, level 3 along height, level 2
  along width.
* ``"authors"``: the orientation of the original authors' code (HongguangZhang/
  DMPHN-cvpr19-master): level 2 cuts 2x1 (top/bottom), level 3 2x2, level 4 4x2. Use it
  to run weights imported from that code exactly as they were trained.

Joining the features of a level "pairwise" always yields exactly the patch grid of the
next finer level, so the static-shape model never needs to know the join direction: it
merges a level's patches back into one full-size map and splits that map with the next
grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

#: The encoder halves the resolution twice (two stride-2 convs); the decoder doubles it
#: twice with ConvTranspose(k4, s2, p1), so every patch side must be a multiple of 4.
ENCODER_STRIDE = 4

MAX_LEVELS = 4


@dataclass(frozen=True)
class PatchGrid:
    """A level's cut of the image into ``rows x cols`` equal patches."""

    rows: int
    cols: int

    @property
    def count(self) -> int:
        return self.rows * self.cols


LAYOUTS: dict[str, tuple[PatchGrid, ...]] = {
    "design": (PatchGrid(1, 1), PatchGrid(1, 2), PatchGrid(2, 2), PatchGrid(2, 4)),
    "authors": (PatchGrid(1, 1), PatchGrid(2, 1), PatchGrid(2, 2), PatchGrid(4, 2)),
}

#: Paper names of the hierarchies, by number of levels.
HIERARCHY_NAMES = {1: "1", 2: "1-2", 3: "1-2-4", 4: "1-2-4-8"}


def parse_levels(value: int | str) -> int:
    """Accept ``4``, ``"4"`` or ``"1-2-4-8"`` (also ``DMPHN-1-2-4-8``); return the level count."""
    text = str(value).strip().upper().removeprefix("DMPHN").strip("-_ ")
    # Every paper name starts with "1", so a bare digit can only mean a level count.
    if text in {str(n) for n in HIERARCHY_NAMES}:
        return int(text)
    for count, name in HIERARCHY_NAMES.items():
        if text == name:
            return count
    raise ValueError(
        f"unknown DMPHN hierarchy {value!r}; use one of "
        + ", ".join(f"{n} ({name})" for n, name in HIERARCHY_NAMES.items())
    )


@dataclass(frozen=True)
class Geometry:
    """Patch grids and size constraints of one DMPHN hierarchy."""

    num_levels: int
    layout: str = "design"

    def __post_init__(self) -> None:
        if not 1 <= self.num_levels <= MAX_LEVELS:
            raise ValueError(f"num_levels must be 1..{MAX_LEVELS}, got {self.num_levels}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"unknown layout {self.layout!r}; use one of {sorted(LAYOUTS)}")

    @property
    def name(self) -> str:
        return HIERARCHY_NAMES[self.num_levels]

    def grid(self, level: int) -> PatchGrid:
        """Patch grid the encoder of ``level`` (1-based) runs on."""
        if not 1 <= level <= self.num_levels:
            raise ValueError(f"level must be 1..{self.num_levels}, got {level}")
        return LAYOUTS[self.layout][level - 1]

    def decoder_grid(self, level: int) -> PatchGrid:
        """Patch grid the decoder of ``level`` runs on: the joined features, i.e. the
        grid of the next finer level (level 1 decodes the whole image)."""
        return self.grid(max(level - 1, 1))

    @property
    def levels_coarse_to_fine(self) -> tuple[int, ...]:
        """Order in which the levels run: most patches first, level 1 last."""
        return tuple(range(self.num_levels, 0, -1))

    @property
    def size_block(self) -> tuple[int, int]:
        """``(bh, bw)``: H must be a multiple of ``bh`` and W of ``bw``."""
        finest = self.grid(self.num_levels)
        return ENCODER_STRIDE * finest.rows, ENCODER_STRIDE * finest.cols

    def check_size(self, height: int, width: int) -> None:
        """Raise ``ValueError`` naming the sizes and the fix if H×W does not fit."""
        bh, bw = self.size_block
        if height <= 0 or width <= 0:
            raise ValueError(f"H and W must be positive; got {height}x{width} (H x W)")
        if height % bh or width % bw:
            ph, pw = self.padded_size(height, width)
            crop_h, crop_w = height - height % bh, width - width % bw
            # cropping is a fix only when something is left of the image
            crop = f" or crop to {crop_h}x{crop_w}" if crop_h and crop_w else ""
            raise ValueError(
                f"DMPHN-{self.name} ({self.layout} layout) needs H a multiple of {bh} and W a "
                f"multiple of {bw}; got {height}x{width} (H x W). Pad to {ph}x{pw} "
                f"(dmphn_core.geometry.pad_to_block){crop}."
            )

    def padded_size(self, height: int, width: int) -> tuple[int, int]:
        bh, bw = self.size_block
        return -(-height // bh) * bh, -(-width // bw) * bw


def split_patches(x: torch.Tensor, grid: PatchGrid) -> torch.Tensor:
    """Fold a grid of patches into the batch: (B, C, H, W) -> (B·rows·cols, C, H/rows, W/cols).

    Patch ``i`` of image ``b`` lands at batch index ``b·count + i`` (row-major order).
    """
    if grid.count == 1:
        return x
    _, c, h, w = x.shape
    ph, pw = h // grid.rows, w // grid.cols
    x = x.reshape(-1, c, grid.rows, ph, grid.cols, pw)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(-1, c, ph, pw)


def merge_patches(x: torch.Tensor, grid: PatchGrid) -> torch.Tensor:
    """Inverse of :func:`split_patches`: (B·rows·cols, C, h, w) -> (B, C, rows·h, cols·w)."""
    if grid.count == 1:
        return x
    _, c, ph, pw = x.shape
    x = x.reshape(-1, grid.rows, grid.cols, c, ph, pw)
    return x.permute(0, 3, 1, 4, 2, 5).reshape(-1, c, grid.rows * ph, grid.cols * pw)


def pad_to_block(x: torch.Tensor, geometry: Geometry) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad (B, C, H, W) on the bottom/right to the next valid size.

    Reflect padding (mirror, no edge repeat) keeps the border statistics natural; it needs
    the pad to be smaller than the side, so tiny images fall back to edge replication.
    Returns the padded tensor and the original ``(H, W)`` for :func:`crop_to`.
    """
    h, w = x.shape[-2:]
    return pad_bottom_right(x, *geometry.padded_size(h, w)), (h, w)


def pad_bottom_right(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pad (B, C, H, W) on the bottom/right up to ``height x width`` (reflect, or replicate when too small)."""
    h, w = x.shape[-2:]
    if (h, w) == (height, width):
        return x
    mode = "reflect" if (width - w) < w and (height - h) < h else "replicate"
    return F.pad(x, (0, width - w, 0, height - h), mode=mode)


def crop_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Crop (…, H, W) back to ``size`` taken from the top-left corner."""
    return x[..., : size[0], : size[1]]
