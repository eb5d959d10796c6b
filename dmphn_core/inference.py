"""Deblur whole images of any size with any runner: pad to the size block, or tile with blended overlaps.

Two paths, chosen per image by :meth:`Deblurrer.plan`:

* **Whole image** (default for runners that take any valid size): reflect-pad the bottom and
  right edges up to the model's size block (:func:`dmphn_core.geometry.pad_to_block`), run
  once, crop back.
* **Tiles** when the artifact has a fixed H/W (static ONNX, TorchScript, AOTInductor, TensorRT)
  that differs from the padded image, or when the caller asks (``tile=N``: large frames, little
  memory). The image is padded to the size block (and up to one tile), tiles start at
  ``0, step, …, padded - tile`` so the last one is flush with the edge, and every offset is a
  block multiple: each tile then sees the same stride-4 sampling grid as a whole-image run
  (an offset off that grid changes every pixel of the tile). Where tiles overlap, their
  outputs are cross-faded with weights that ramp linearly across the overlap, then divided by
  the summed weight, so there are no seams and a constant image stays constant. One level
  sees 64 px around each pixel, so tiles differ a little from a whole-image run near their
  inner borders, and a multi-level model's patch borders fall elsewhere in a tile than in the
  whole image; the overlap hides most of it.

The tile maths lives in :mod:`dmphn_core.tiling`; turning a model file into a runner in
:mod:`runtimes.resolve`. The Deblurrer takes any object with the runner interface
(:class:`ImageRunner`), so this layer imports nothing above it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch

from .errors import DMPHNError, ImageError
from .geometry import Geometry, crop_to, pad_bottom_right, pad_to_block
from .model import DMPHNConfig
from .tiling import DEFAULT_OVERLAP, TilePlan, blend_weights, plan_tiles, universal_size_block

# -- the deblurrer --------------------------------------------------------------------


class ImageRunner(Protocol):
    """What the Deblurrer needs of a runner (:class:`runtimes.base.Runner` has it all)."""

    name: str
    device: str
    precision: str
    input_shape: tuple[int | None, ...] | None
    model_config: DMPHNConfig | None

    def activate(self) -> None: ...

    def infer(self, x: torch.Tensor) -> torch.Tensor: ...


class Deblurrer:
    """Run a runner (:class:`ImageRunner`) on whole images of any size.

    ``tile``: square tile side in pixels (rounded up to the size block) to bound memory;
    None runs the whole image unless the runner's artifact has a fixed H/W, which then sets
    the tile. ``overlap``: pixels shared by neighbouring tiles. ``tile_batch``: tiles per
    runner call when the artifact's batch is dynamic (a fixed batch B always gets B).

    The runner is activated here if it is not yet; the caller deactivates it (``with runner:``).
    """

    def __init__(self, runner: ImageRunner, *, tile: int | None = None, overlap: int = DEFAULT_OVERLAP, tile_batch: int = 1) -> None:
        if tile is not None and tile < 1:
            raise DMPHNError(f"tile must be a positive number of pixels, got {tile}")
        if overlap < 0:
            raise DMPHNError(f"overlap must not be negative, got {overlap}")
        if tile_batch < 1:
            raise DMPHNError(f"tile_batch must be at least 1, got {tile_batch}")
        self.runner = runner
        self.tile = tile
        self.overlap = overlap
        self.tile_batch = tile_batch
        #: called as ``on_tiles(done, total)`` after each batch of tiles (progress bars); None: silent
        self.on_tiles: Callable[[int, int], None] | None = None
        runner.activate()

    # -- geometry ----------------------------------------------------------------------
    @property
    def geometry(self) -> Geometry | None:
        """The runner's model geometry; None for an artifact that does not name its model."""
        config = self.runner.model_config
        return config.geometry if config is not None else None

    @property
    def size_block(self) -> tuple[int, int]:
        geometry = self.geometry
        return geometry.size_block if geometry is not None else universal_size_block()

    @property
    def fixed_hw(self) -> tuple[int | None, int | None]:
        """The artifact's fixed (H, W); None entries are free."""
        shape = self.runner.input_shape
        if shape is None:
            return None, None
        return shape[2], shape[3]

    @property
    def fixed_batch(self) -> int | None:
        shape = self.runner.input_shape
        return None if shape is None else shape[0]

    def plan(self, height: int, width: int) -> TilePlan:
        """The tiles an image of ``height x width`` is run as (one tile = the whole padded image)."""
        if height < 1 or width < 1:
            raise ImageError(f"image is empty ({height}x{width})")
        return plan_tiles(height, width, size_block=self.size_block, fixed_hw=self.fixed_hw, tile=self.tile,
                          overlap=self.overlap)

    # -- running -----------------------------------------------------------------------
    def deblur(self, image: np.ndarray, *, clamp: bool = True) -> np.ndarray:
        """(H, W, 3) float RGB in [0, 1] -> (H, W, 3) float32, same size; ``clamp`` clips to [0, 1].

        The input array is never modified.
        """
        _check_image(image)
        # a copy: the caller's array is never shared with the runner, and read-only arrays work too
        x = torch.tensor(image.transpose(2, 0, 1), dtype=torch.float32).unsqueeze(0)
        out = self.deblur_tensor(x)[0].cpu()
        if clamp:
            out = out.clamp(0.0, 1.0)
        return out.numpy().transpose(1, 2, 0).copy()

    __call__ = deblur

    def deblur_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """(1, 3, H, W) float tensor -> (1, 3, H, W) float32 on the runner's device, unclamped."""
        if x.dim() != 4 or x.shape[0] != 1 or x.shape[1] != 3:
            raise ImageError(f"expected one (1, 3, H, W) image, got shape {tuple(x.shape)}")
        plan = self.plan(x.shape[2], x.shape[3])
        x = x.to(self.runner.device, torch.float32)
        geometry = self.geometry
        if plan.is_whole and geometry is not None and plan.padded_hw == geometry.padded_size(*plan.image_hw):
            padded, size = pad_to_block(x, geometry)
            return crop_to(self._run([padded])[0], size)
        return self._run_tiles(x, plan)  # also one tile of an unnamed artifact: padded the same way

    def _run_tiles(self, x: torch.Tensor, plan: TilePlan) -> torch.Tensor:
        padded = pad_bottom_right(x, *plan.padded_hw)
        th, tw = plan.tile_hw
        row_weights = blend_weights(list(plan.rows), th)
        col_weights = blend_weights(list(plan.cols), tw)
        output = torch.zeros((1, 3, *plan.padded_hw), device=x.device)
        total = torch.zeros((1, 1, *plan.padded_hw), device=x.device)
        spots = [(i, j) for i in range(len(plan.rows)) for j in range(len(plan.cols))]
        chunk = self.fixed_batch or self.tile_batch
        for begin in range(0, len(spots), chunk):
            batch_spots = spots[begin : begin + chunk]
            tiles = [padded[..., plan.rows[i] : plan.rows[i] + th, plan.cols[j] : plan.cols[j] + tw] for i, j in batch_spots]
            for (i, j), result in zip(batch_spots, self._run(tiles)):
                weight = (row_weights[i][:, None] * col_weights[j][None, :]).to(x.device)
                window = (..., slice(plan.rows[i], plan.rows[i] + th), slice(plan.cols[j], plan.cols[j] + tw))
                output[window] += result * weight
                total[window] += weight
            if self.on_tiles is not None:
                self.on_tiles(begin + len(batch_spots), len(spots))
        return crop_to(output / total, plan.image_hw)

    def _run(self, tiles: list[torch.Tensor]) -> list[torch.Tensor]:
        """Run (1, 3, h, w) tiles of one size as one batch; a fixed batch is filled with repeats."""
        count = len(tiles)
        batch = torch.cat(tiles)
        if self.fixed_batch is not None and self.fixed_batch > count:
            batch = torch.cat([batch, batch[-1:].expand(self.fixed_batch - count, -1, -1, -1)])
        out = self.runner.infer(batch)
        if not isinstance(out, torch.Tensor) or out.shape != batch.shape:
            got = tuple(out.shape) if hasattr(out, "shape") else type(out).__name__
            raise DMPHNError(f"{self.runner.name} returned {got} for input {tuple(batch.shape)}")
        if not torch.isfinite(out[:count]).all():
            raise DMPHNError(f"{self.runner.name} produced NaN or Inf (precision {self.runner.precision})")
        return list(out[:count].to(tiles[0].device).split(1))


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray):
        raise ImageError(f"expected a numpy (H, W, 3) image, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
    if not np.issubdtype(image.dtype, np.floating):
        raise ImageError(f"expected a float image in [0, 1], got {image.dtype}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ImageError(f"image is empty ({image.shape[0]}x{image.shape[1]})")
    if not np.isfinite(image).all():
        raise ImageError("image holds NaN or Inf")


def deblur_image(runner: ImageRunner, image: np.ndarray, *, tile: int | None = None, overlap: int = DEFAULT_OVERLAP,
                 clamp: bool = True) -> np.ndarray:
    """One-shot :meth:`Deblurrer.deblur`: (H, W, 3) float in [0, 1] -> (H, W, 3) float32."""
    return Deblurrer(runner, tile=tile, overlap=overlap).deblur(image, clamp=clamp)


__all__ = ["DEFAULT_OVERLAP", "Deblurrer", "ImageRunner", "TilePlan", "deblur_image"]
