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

A "model" argument (a path) becomes a runner in :func:`resolve_runner`, by suffix:

* ``.pt``, ``.pth``: DMPHN checkpoint -> runtime ``torch``
* ``.ts``, ``.torchscript``: TorchScript module -> ``torchscript``
* ``.onnx``: ONNX model -> ``ort``
* ``.pt2``: AOTInductor package -> ``aoti``
* ``.engine``, ``.plan``: TensorRT engine -> ``trt``
* ``.xml``: OpenVINO IR (with its ``.bin``) -> ``ov`` (an int8 IR runs at int8)

A ``.pt`` that is really a TorchScript archive (it holds ``code/`` and ``constants.pkl``) is
run as TorchScript; ``runtime`` (``--runtime``) overrides the guess.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from .artifact import is_torchscript_archive, sidecar_path
from .checkpoint import DEMO_CHECKPOINT, load_checkpoint
from .errors import DMPHNError, ImageError, RuntimeUnavailable
from .geometry import LAYOUTS, MAX_LEVELS, Geometry, crop_to, pad_to_block

if TYPE_CHECKING:  # runtimes imports dmphn_core; import it lazily at run time
    from runtimes.base import Runner

#: Default overlap between neighbouring tiles, in pixels (see the module docstring).
DEFAULT_OVERLAP = 32

SUFFIX_RUNTIMES = {
    ".pt": "torch",
    ".pth": "torch",
    ".ts": "torchscript",
    ".torchscript": "torchscript",
    ".onnx": "ort",
    ".pt2": "aoti",
    ".engine": "trt",
    ".plan": "trt",
    ".xml": "ov",
}
#: Runtimes that run a checkpoint (a module built in Python) rather than an exported artifact.
CHECKPOINT_RUNTIMES = ("torch", "torch-ref", "compile")


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


def _pad_bottom_right(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pad (B, C, H, W) up to ``height x width``; reflect where the image is large enough (as pad_to_block)."""
    h, w = x.shape[-2:]
    if (h, w) == (height, width):
        return x
    mode = "reflect" if (width - w) < w and (height - h) < h else "replicate"
    return F.pad(x, (0, width - w, 0, height - h), mode=mode)


# -- the deblurrer --------------------------------------------------------------------


class Deblurrer:
    """Run a :class:`runtimes.base.Runner` on whole images of any size.

    ``tile``: square tile side in pixels (rounded up to the size block) to bound memory;
    None runs the whole image unless the runner's artifact has a fixed H/W, which then sets
    the tile. ``overlap``: pixels shared by neighbouring tiles. ``tile_batch``: tiles per
    runner call when the artifact's batch is dynamic (a fixed batch B always gets B).

    The runner is activated here if it is not yet; the caller deactivates it (``with runner:``).
    """

    def __init__(self, runner: Runner, *, tile: int | None = None, overlap: int = DEFAULT_OVERLAP, tile_batch: int = 1) -> None:
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
        tile_hw, padded_hw, overlap_hw = [], [], []
        for size, fixed, block in zip((height, width), self.fixed_hw, self.size_block):
            if fixed is not None:
                # an artifact's shape is a multiple of its model's block; an unnamed model's
                # block (the universal one may be larger) must divide it
                block = math.gcd(block, fixed)
                tile = fixed
            block_padded = _round_up(size, block)
            if fixed is None:
                tile = min(_round_up(self.tile, block), block_padded) if self.tile is not None else block_padded
            padded = max(block_padded, tile)
            # Tiles start on block multiples, so each one sees the same stride-4 sampling grid
            # as the whole image (an odd offset changes every output pixel of the tile). The
            # overlap is a block multiple, at most half a tile, so the step stays positive.
            overlap = min(_round_up(self.overlap, block), tile // 2 // block * block) if padded > tile else 0
            tile_hw.append(tile)
            padded_hw.append(padded)
            overlap_hw.append(overlap)
        rows = tile_starts(padded_hw[0], tile_hw[0], overlap_hw[0])
        cols = tile_starts(padded_hw[1], tile_hw[1], overlap_hw[1])
        return TilePlan((height, width), tuple(padded_hw), tuple(tile_hw), tuple(overlap_hw), tuple(rows), tuple(cols))

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
        padded = _pad_bottom_right(x, *plan.padded_hw)
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


def deblur_image(runner: Runner, image: np.ndarray, *, tile: int | None = None, overlap: int = DEFAULT_OVERLAP,
                 clamp: bool = True) -> np.ndarray:
    """One-shot :meth:`Deblurrer.deblur`: (H, W, 3) float in [0, 1] -> (H, W, 3) float32."""
    return Deblurrer(runner, tile=tile, overlap=overlap).deblur(image, clamp=clamp)


# -- model argument -> runner ---------------------------------------------------------


def runtime_for_path(path: str | os.PathLike) -> str:
    """The runtime key a model file runs with, from its suffix (see the module docstring)."""
    path = Path(path)
    runtime = SUFFIX_RUNTIMES.get(path.suffix.lower())
    if runtime is None:
        raise DMPHNError(
            f"cannot tell what kind of model {path} is from its suffix {path.suffix!r}; use one of "
            f"{', '.join(SUFFIX_RUNTIMES)} or name the runtime (--runtime)"
        )
    if runtime == "torch" and is_torchscript_archive(path):
        return "torchscript"
    return runtime


def default_device(runtime: str | None = None) -> str:
    if runtime == "trt":
        return "cuda"
    return "cuda" if torch.cuda.is_available() else "cpu"


def _engine_precision(path: Path) -> str:
    """The precision recorded in a TensorRT engine's JSON sidecar (fp16 when there is none)."""
    sidecar = sidecar_path(path)
    try:
        return json.loads(sidecar.read_text()).get("precision", "fp16")
    except (OSError, json.JSONDecodeError, AttributeError):
        return "fp16"


def _openvino_precision(path: Path) -> str:
    """int8 for a quantized IR (it runs at no other precision), else fp32."""
    from .artifact import read_metadata

    metadata = read_metadata(path, "openvino") or {}
    return "int8" if metadata.get("precision") == "int8" else "fp32"


def resolve_runner(
    model: str | os.PathLike | None = None,
    runtime: str | None = None,
    device: str | None = None,
    precision: str | None = None,
    *,
    threads: int | None = None,
) -> Runner:
    """A ready-to-activate runner for a model file (None: the shipped demo checkpoint).

    ``runtime`` overrides the guess from the suffix; ``device`` None/"auto" picks CUDA when
    there is one; ``precision`` None means fp32 (a TensorRT engine: the one it was built in).
    """
    from runtimes import RUNTIMES, runner_class

    if model is None:
        if not DEMO_CHECKPOINT.is_file():
            raise DMPHNError(
                f"no model given and the demo checkpoint is missing ({DEMO_CHECKPOINT}); pass --model with a "
                f"checkpoint (.pt) from dmphn-train or an exported artifact (.ts, .onnx, .pt2, .engine)"
            )
        path = DEMO_CHECKPOINT
    else:
        path = Path(model)
    if not path.exists():
        raise DMPHNError(f"model not found: {path}")
    if path.is_dir():
        raise DMPHNError(f"model path is a folder, not a file: {path}")
    if runtime is not None and runtime not in RUNTIMES:
        raise DMPHNError(f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)}")
    runtime = runtime or runtime_for_path(path)
    if precision is None:
        precision = _engine_precision(path) if runtime == "trt" else _openvino_precision(path) if runtime == "ov" else "fp32"
    cls = runner_class(runtime)
    if device in (None, "auto"):
        device = default_device(runtime)
        if device == "cuda" and runtime != "trt" and cls.unavailable_reason(device, precision):
            device = "cpu"  # e.g. a CPU-only onnxruntime on a GPU host: "auto" means "what works"
    reason = cls.unavailable_reason(device, precision)
    if reason:
        raise RuntimeUnavailable(f"runtime {runtime} cannot run on {device}/{precision}: {reason}")
    if runtime in CHECKPOINT_RUNTIMES:
        # load now: a bad checkpoint is reported before any image is read
        checkpoint = load_checkpoint(path)
        return cls(checkpoint.build_model, device=device, precision=precision)
    if runtime in ("ort", "ov"):
        return cls(path, device=device, precision=precision, threads=threads)
    return cls(path, device=device, precision=precision)


__all__ = [
    "DEFAULT_OVERLAP", "Deblurrer", "TilePlan", "blend_weights", "deblur_image", "default_device",
    "is_torchscript_archive", "resolve_runner", "runtime_for_path", "tile_starts", "universal_size_block",
]
