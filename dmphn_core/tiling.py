"""Tile maths for running a fixed-size model over images of any size.

Tiles start at ``0, step, …, padded - tile`` so the last one is flush with the edge, and every
offset is a multiple of the model's size block: each tile then sees the same stride-4 sampling
grid as a whole-image run. Where tiles overlap their outputs are cross-faded with linear ramps
(:func:`blend_weights`). :func:`plan_tiles` decides the tiles of one image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .geometry import LAYOUTS, MAX_LEVELS, Geometry

#: Default overlap between neighbouring tiles, in pixels.
DEFAULT_OVERLAP = 32


def universal_size_block() -> tuple[int, int]:
    """A block every hierarchy and layout accepts (for artifacts that do not name their model)."""
    blocks = [Geometry(MAX_LEVELS, layout).size_block for layout in LAYOUTS]
    return math.lcm(*(b[0] for b in blocks)), math.lcm(*(b[1] for b in blocks))


# -- tiling ---------------------------------------------------------------------------


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of length ``tile`` covering ``size`` (>= tile): the last is flush with the end."""
    if tile <= 0 or size < tile:
        raise ValueError(f"tile {tile} must be positive and not larger than size {size}")
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap {overlap} must be in [0, tile={tile})")
    if size == tile:
        return [0]
    step = tile - overlap
    return list(range(0, size - tile, step)) + [size - tile]


def blend_weights(starts: list[int], tile: int) -> list[torch.Tensor]:
    """One (tile,) weight vector per tile: 1 inside, a linear ramp across each overlap with a neighbour.

    The ramp spans the whole overlap (which is wider for the last, flush tile), runs from
    ``0.5/L`` at the tile's edge to ``1 - 0.5/L``, and never reaches 0, so every pixel has a
    positive total weight. Edges on the image border get no ramp.
    """
    weights = []
    for index, start in enumerate(starts):
        weight = torch.ones(tile)
        if index > 0:
            overlap = starts[index - 1] + tile - start
            if overlap > 0:
                weight[:overlap] = torch.minimum(weight[:overlap], (torch.arange(overlap) + 0.5) / overlap)
        if index < len(starts) - 1:
            overlap = start + tile - starts[index + 1]
            if overlap > 0:
                ramp = ((torch.arange(overlap) + 0.5) / overlap).flip(0)
                weight[tile - overlap :] = torch.minimum(weight[tile - overlap :], ramp)
        weights.append(weight)
    return weights


@dataclass(frozen=True)
class TilePlan:
    """How one image of ``image_hw`` is run: tiles of ``tile_hw`` at ``rows`` x ``cols`` offsets.

    ``padded_hw`` is the size the image is padded to first (bottom/right): a multiple of the
    size block, and at least one tile. Offsets and overlaps are block multiples.
    """

    image_hw: tuple[int, int]
    padded_hw: tuple[int, int]
    tile_hw: tuple[int, int]
    overlap_hw: tuple[int, int]
    rows: tuple[int, ...]
    cols: tuple[int, ...]

    @property
    def count(self) -> int:
        return len(self.rows) * len(self.cols)

    @property
    def is_whole(self) -> bool:
        return self.count == 1

    def describe(self) -> str:
        if self.is_whole:
            return f"whole {self.padded_hw[0]}x{self.padded_hw[1]}"
        return f"{self.count} tiles of {self.tile_hw[0]}x{self.tile_hw[1]} (overlap {self.overlap_hw[0]}x{self.overlap_hw[1]})"


def _round_up(value: int, block: int) -> int:
    return -(-value // block) * block


def plan_tiles(
    height: int,
    width: int,
    *,
    size_block: tuple[int, int],
    fixed_hw: tuple[int | None, int | None] = (None, None),
    tile: int | None = None,
    overlap: int = DEFAULT_OVERLAP,
) -> TilePlan:
    """The tiles an image of ``height x width`` runs as (one tile = the whole padded image).

    ``fixed_hw``: the artifact's fixed (H, W), None where free; ``tile``: the largest tile side
    asked for (None: whole image where the artifact allows).
    """
    tile_hw, padded_hw, overlap_hw = [], [], []
    for size, fixed, block in zip((height, width), fixed_hw, size_block):
        if fixed is not None:
            # an artifact's shape is a multiple of its model's block; an unnamed model's
            # block (the universal one may be larger) must divide it
            block = math.gcd(block, fixed)
            side = fixed
        block_padded = _round_up(size, block)
        if fixed is None:
            side = min(_round_up(tile, block), block_padded) if tile is not None else block_padded
        padded = max(block_padded, side)
        # Tiles start on block multiples, so each one sees the same stride-4 sampling grid
        # as the whole image (an odd offset changes every output pixel of the tile). The
        # overlap is a block multiple, at most half a tile, so the step stays positive.
        side_overlap = min(_round_up(overlap, block), side // 2 // block * block) if padded > side else 0
        tile_hw.append(side)
        padded_hw.append(padded)
        overlap_hw.append(side_overlap)
    rows = tile_starts(padded_hw[0], tile_hw[0], overlap_hw[0])
    cols = tile_starts(padded_hw[1], tile_hw[1], overlap_hw[1])
    return TilePlan((height, width), tuple(padded_hw), tuple(tile_hw), tuple(overlap_hw), tuple(rows), tuple(cols))


__all__ = ["DEFAULT_OVERLAP", "TilePlan", "blend_weights", "plan_tiles", "tile_starts", "universal_size_block"]
