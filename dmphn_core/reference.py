"""Deliberately plain per-patch DMPHN, written the way the paper's code runs it.

Every patch is sliced out, encoded by its own call, and features are joined with
``torch.cat`` patch by patch. It shares :class:`~dmphn_core.model.DMPHN`'s modules and
state-dict keys, so the same weights load into both. It exists to prove the static-shape
model right (tests) and to measure what static shapes buy (benchmarks); do not deploy it.

It reads only the patch grids from :mod:`dmphn_core.geometry` and cuts and joins with
its own slicing, so it checks ``split_patches``/``merge_patches`` rather than reusing them.
"""

from __future__ import annotations

import torch

from .geometry import PatchGrid
from .model import DMPHN


def cut_into_patches(image: torch.Tensor, grid: PatchGrid) -> list[torch.Tensor]:
    """Row-major list of ``grid.count`` slices of (B, C, H, W)."""
    h, w = image.shape[-2] // grid.rows, image.shape[-1] // grid.cols
    return [
        image[:, :, r * h : (r + 1) * h, c * w : (c + 1) * w]
        for r in range(grid.rows)
        for c in range(grid.cols)
    ]


def join_patches(patches: list[torch.Tensor], fine: PatchGrid, coarse: PatchGrid) -> list[torch.Tensor]:
    """Join a fine grid's patches into the coarse grid's, concatenating neighbours.

    Each coarse patch covers ``fine.rows // coarse.rows`` x ``fine.cols // coarse.cols``
    fine patches: concatenate each row of them along width, then the rows along height.
    """
    rows_per, cols_per = fine.rows // coarse.rows, fine.cols // coarse.cols
    joined = []
    for cr in range(coarse.rows):
        for cc in range(coarse.cols):
            strips = []
            for r in range(cr * rows_per, (cr + 1) * rows_per):
                row = [patches[r * fine.cols + c] for c in range(cc * cols_per, (cc + 1) * cols_per)]
                strips.append(torch.cat(row, dim=3))
            joined.append(torch.cat(strips, dim=2))
    return joined


class PerPatchDMPHN(DMPHN):
    """Same weights as :class:`DMPHN`, one encoder/decoder call per patch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        image = x - 0.5
        features: list[torch.Tensor] | None = None
        decoded: list[torch.Tensor] | None = None
        for level in self.geometry.levels_coarse_to_fine:
            grid, decoder_grid = self.geometry.grid(level), self.geometry.decoder_grid(level)
            encoder, decoder = self.encoders[level - 1], self.decoders[level - 1]
            inputs = cut_into_patches(image, grid)
            if decoded is not None:
                inputs = [patch + residual for patch, residual in zip(inputs, decoded)]
            level_features = join_patches([encoder(p) for p in inputs], grid, decoder_grid)
            if features is not None:
                # the finer level's features were joined to this level's grid; join them
                # once more so they line up with this level's joined features
                previous = join_patches(features, grid, decoder_grid)
                level_features = [f + p for f, p in zip(level_features, previous)]
            features = level_features
            decoded = [decoder(f) for f in features]
        (output,) = decoded
        return output + 0.5
