"""The GoPro deblurring layout (GOPRO_Large), read as blurred/sharp pairs.

::

    root/train/<sequence>/blur/000047.png        (also blur_gamma/, sharp/)
    root/test/<sequence>/...

Pairs match by file name inside one sequence. The offline camera-shake generator
(:mod:`dmphn_core.data.camera_shake`) writes the same layout, so one reader serves both.

Randomness (which images make a batch, crop positions, flips) is a pure function of
``(seed, step, position in batch)``: resuming at step ``s`` sees exactly the batches an
uninterrupted run would, and a 2-process DDP run of batch 3 per rank sees the same six
samples as one process of batch 6. No RNG state has to be saved for the data.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ..errors import DMPHNError
from ..imageio import IMAGE_SUFFIXES, read_image

#: ``blur``: frames averaged as stored (sRGB); ``blur_gamma``: averaged in linear light.
#: GOPRO_Large ships both; ``blur_gamma`` is the physically right one and the default here.
BLUR_KINDS = ("blur_gamma", "blur")
SHARP_FOLDER = "sharp"


class DatasetError(DMPHNError):
    pass


@dataclass(frozen=True)
class ImagePair:
    blurred: Path
    sharp: Path
    sequence: str

    @property
    def name(self) -> str:
        return f"{self.sequence}/{self.blurred.name}"


def find_pairs(root: str | os.PathLike, split: str = "train", blur_kind: str = "blur_gamma") -> list[ImagePair]:
    """All (blurred, sharp) pairs of ``root/split``, sorted; clear errors for a broken layout."""
    if blur_kind not in BLUR_KINDS:
        raise DatasetError(f"unknown blur kind {blur_kind!r}; use one of {', '.join(BLUR_KINDS)}")
    split_dir = Path(root) / split
    if not split_dir.is_dir():
        raise DatasetError(f"no {split!r} split: {split_dir} is not a folder (expected GoPro layout root/{split}/<sequence>/...)")
    sequences = sorted(p for p in split_dir.iterdir() if p.is_dir())
    if not sequences:
        raise DatasetError(f"{split_dir} holds no sequence folders")
    pairs: list[ImagePair] = []
    for sequence in sequences:
        blur_dir, sharp_dir = sequence / blur_kind, sequence / SHARP_FOLDER
        for folder in (blur_dir, sharp_dir):
            if not folder.is_dir():
                raise DatasetError(f"sequence {sequence.name}: missing folder {folder}")
        blurred = {p.name: p for p in _images_in(blur_dir)}
        sharp = {p.name: p for p in _images_in(sharp_dir)}
        unpaired = sorted(set(blurred) ^ set(sharp))
        if unpaired:
            where = [f"{n} (only in {blur_kind if n in blurred else SHARP_FOLDER})" for n in unpaired[:3]]
            raise DatasetError(
                f"sequence {sequence.name}: {len(unpaired)} unpaired file(s), e.g. {', '.join(where)}"
            )
        pairs += [ImagePair(blurred[n], sharp[n], sequence.name) for n in sorted(blurred)]
    if not pairs:
        raise DatasetError(f"{split_dir} holds no image pairs")
    return pairs


def _images_in(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]


def draw_seed(seed: int, step: int, position: int) -> int:
    """The seed of one sample's crop and flip: a pure function, see the module docstring."""
    return int(np.random.SeedSequence([seed, 1, step, position]).generate_state(1)[0])


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's shuffle (a stream apart from :func:`draw_seed`'s)."""
    return int(np.random.SeedSequence([seed, 0, epoch]).generate_state(1)[0])


class PairDataset(Dataset):
    """Pairs as ``(blurred, sharp)`` float32 tensors of shape (3, H, W) in [0, 1].

    Indexed by ``(pair_index, draw_seed)`` (see :class:`StepBatchSampler`) when cropping;
    by a plain int for full frames (``crop=None``, evaluation).
    """

    def __init__(self, pairs: list[ImagePair], crop: int | None = 256, flip: bool = True) -> None:
        self.pairs = pairs
        self.crop = crop
        self.flip = flip

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        index, seed = key if isinstance(key, tuple) else (key, 0)
        pair = self.pairs[index]
        blurred, sharp = read_image(pair.blurred), read_image(pair.sharp)
        if blurred.shape != sharp.shape:
            raise DatasetError(f"{pair.name}: blurred {blurred.shape[:2]} and sharp {sharp.shape[:2]} sizes differ")
        if self.crop is not None:
            blurred, sharp = self._random_crop_and_flip(blurred, sharp, np.random.default_rng(seed), pair)
        return _to_chw(blurred), _to_chw(sharp)

    def _random_crop_and_flip(self, blurred: np.ndarray, sharp: np.ndarray, rng: np.random.Generator, pair: ImagePair):
        h, w = blurred.shape[:2]
        if h < self.crop or w < self.crop:
            raise DatasetError(f"{pair.name} is {h}x{w}, smaller than the {self.crop}x{self.crop} training crop")
        top, left = int(rng.integers(0, h - self.crop + 1)), int(rng.integers(0, w - self.crop + 1))
        window = (slice(top, top + self.crop), slice(left, left + self.crop))
        blurred, sharp = blurred[window], sharp[window]
        if self.flip:
            if rng.random() < 0.5:
                blurred, sharp = blurred[:, ::-1], sharp[:, ::-1]
            if rng.random() < 0.5:
                blurred, sharp = blurred[::-1], sharp[::-1]
        return blurred, sharp


def _to_chw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


class StepBatchSampler(Sampler[list[tuple[int, int]]]):
    """Endless batches of ``(pair_index, draw_seed)`` keys, starting at ``start_step``.

    The global batch of step ``s`` is positions ``s*batch ... s*batch+batch-1`` of an
    endless stream of per-epoch shuffles; rank ``r`` of ``world`` takes its contiguous
    share of it.
    """

    def __init__(self, num_items: int, batch: int, *, seed: int = 0, start_step: int = 0, rank: int = 0, world: int = 1):
        if batch % world:
            raise DMPHNError(f"batch {batch} does not split evenly over {world} processes")
        if num_items < 1:
            raise DMPHNError("no training pairs")
        self.num_items, self.batch, self.seed = num_items, batch, seed
        self.start_step, self.rank, self.world = start_step, rank, world
        self._epoch_cache: dict[int, list[int]] = {}

    def _order(self, epoch: int) -> list[int]:
        if epoch not in self._epoch_cache:
            generator = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
            self._epoch_cache = {epoch: torch.randperm(self.num_items, generator=generator).tolist()}
        return self._epoch_cache[epoch]

    def batch_for_step(self, step: int) -> list[tuple[int, int]]:
        share = self.batch // self.world
        keys = []
        for position in range(self.rank * share, (self.rank + 1) * share):
            stream_index = step * self.batch + position
            epoch, offset = divmod(stream_index, self.num_items)
            keys.append((self._order(epoch)[offset], draw_seed(self.seed, step, position)))
        return keys

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        step = self.start_step
        while True:
            yield self.batch_for_step(step)
            step += 1
