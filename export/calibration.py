"""Calibration images for post-training quantization, and the shape they are made at.

From a folder of the user's blurred frames (best: frames like the ones the model will see),
or, offline, camera-shake views of the photos bundled with scikit-image: each photo is
scaled to cover H x W, centre-cropped and blurred along a random hand-shake path
(:mod:`dmphn_core.data.camera_shake`), so the activations span what real blurred inputs give.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from dmphn_core.data.camera_shake import ShakeSettings, camera_path, shake
from dmphn_core.errors import DMPHNError
from dmphn_core.imageio import list_images, read_image
from dmphn_core.samples import TRAIN_PHOTOS, photo_path

#: Default number of calibration batches (NNCF's ranges settle after a handful of images).
DEFAULT_SAMPLES = 9
#: (H, W) int8 models are calibrated at (through a copy of the graph with dynamic H and W), or
#: the export shape if that is smaller: DMPHN is fully convolutional, so per-tensor activation
#: ranges and per-channel weight scales do not depend on the image size, and 9 images at this
#: size take seconds where 9 at 720x1280 take minutes on two cores (and, in ONNX Runtime's
#: calibration, over 24 GB: it keeps every activation alive until its reductions run).
CALIBRATION_SHAPE = (128, 256)


#: Activation ranges of the int8 recipes (ONNX Runtime, ExecuTorch): this percentile of each
#: tensor's calibration values at the top (and 100 minus it at the bottom), not the extremes.
#: The extremes (MinMax) spend the 8 bits on a few outliers; ranges fitted to the calibration
#: data (histogram/L2 observers) clip on frames brighter or sharper than it. Measured on the
#: authors' model: export/onnx_int8.py and export/to_executorch.py docstrings.
ACTIVATION_PERCENTILE = 99.999

#: what an int8 export keeps float: "auto", the recipe of both int8 exporters (export/ov_int8.py,
#: export/onnx_int8.py), or "none", the quantizer's plain post-training quantization
KEEP_FLOAT = ("auto", "none")


def check_keep_float(keep_float: str, name: str = "keep_float") -> None:
    if keep_float not in KEEP_FLOAT:
        raise DMPHNError(f"{name} must be {' or '.join(KEEP_FLOAT)}, got {keep_float!r}")


def calibration_shape(height: int, width: int, size_block: tuple[int, int]) -> tuple[int, int]:
    """The smaller of the export shape and :data:`CALIBRATION_SHAPE`, on the size block."""
    bh, bw = size_block
    ch, cw = CALIBRATION_SHAPE
    return min(height, max(bh, ch // bh * bh)), min(width, max(bw, cw // bw * bw))


def cover_crop(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """(h, w, 3) -> (height, width, 3) float32: scale to cover, then centre crop."""
    h, w = image.shape[:2]
    scale = max(height / h, width / w)
    if abs(scale - 1.0) > 1e-6:
        size = (max(width, round(w * scale)), max(height, round(h * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    top, left = (image.shape[0] - height) // 2, (image.shape[1] - width) // 2
    return np.ascontiguousarray(np.clip(image[top : top + height, left : left + width], 0.0, 1.0), dtype=np.float32)


def _batches(images: list[np.ndarray], batch: int) -> list[np.ndarray]:
    """Group (H, W, 3) images into (batch, 3, H, W) arrays, cycling so every batch is full."""
    chw = [image.transpose(2, 0, 1) for image in images]
    count = max(1, len(chw) // batch)
    return [
        np.ascontiguousarray(np.stack([chw[(k * batch + i) % len(chw)] for i in range(batch)]), dtype=np.float32)
        for k in range(count)
    ]


def shaken_photos(height: int, width: int, count: int = DEFAULT_SAMPLES, seed: int = 0) -> list[np.ndarray]:
    """``count`` camera-shake blurred (H, W, 3) views of the bundled training photos."""
    settings = ShakeSettings()
    views = []
    for k in range(count):
        name = TRAIN_PHOTOS[k % len(TRAIN_PHOTOS)]
        sharp = cover_crop(read_image(photo_path(name)), height, width)
        rng = np.random.default_rng([seed, k])
        views.append(shake(sharp, camera_path(rng, settings), settings, rng)["blur"].astype(np.float32))
    return views


def folder_images(folder: str | os.PathLike, height: int, width: int, count: int = DEFAULT_SAMPLES) -> list[np.ndarray]:
    """Up to ``count`` images of ``folder`` (sorted by name), each cover-cropped to H x W."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DMPHNError(f"calibration folder not found: {folder}")
    paths = list_images(folder)
    if not paths:
        raise DMPHNError(f"no images (.png, .jpg, ...) in calibration folder {folder}")
    return [cover_crop(read_image(path), height, width) for path in paths[:count]]


def calibration_batches(
    batch: int, height: int, width: int, folder: str | os.PathLike | None = None, count: int = DEFAULT_SAMPLES,
    seed: int = 0,
) -> list[np.ndarray]:
    """(batch, 3, H, W) float32 arrays in [0, 1] for calibration: from ``folder``, else shaken photos
    (``seed`` picks the shake paths: another seed gives held-out views of the same photos)."""
    if count < 1:
        raise DMPHNError(f"need at least one calibration image, got {count}")
    images = (folder_images(folder, height, width, count) if folder is not None
              else shaken_photos(height, width, count, seed=seed))
    return _batches(images, batch)
