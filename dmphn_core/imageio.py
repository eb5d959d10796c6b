"""Image files <-> float RGB arrays and tensors. OpenCV does the codecs."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import torch

from .errors import ImageError
from .fileio import atomic_path

#: Suffixes the deblur and dataset code pick up when given a folder.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as float32 RGB, (H, W, 3), in [0, 1].

    Grey images are repeated to 3 channels, alpha is dropped, 16-bit images are scaled.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image not found: {path}")
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.size == 0:
        raise ImageError(f"cannot decode image {path}: corrupt or unsupported format")
    if raw.dtype == np.uint8:
        scale = 255.0
    elif raw.dtype == np.uint16:
        scale = 65535.0
    elif raw.dtype == np.float32:
        scale = 1.0
    else:
        raise ImageError(f"{path}: unsupported pixel type {raw.dtype}")
    if raw.ndim == 2:
        rgb = cv2.cvtColor(raw, cv2.COLOR_GRAY2RGB)
    elif raw.shape[2] == 4:
        rgb = cv2.cvtColor(raw, cv2.COLOR_BGRA2RGB)
    elif raw.shape[2] == 3:
        rgb = cv2.cvtColor(raw, cv2.COLOR_BGR2RGB)
    else:
        raise ImageError(f"{path}: {raw.shape[2]} channels; expected grey, RGB or RGBA")
    image = rgb.astype(np.float32) / scale
    if not np.isfinite(image).all():
        raise ImageError(f"{path}: image holds NaN or Inf")
    return image


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write float RGB (H, W, 3) in [0, 1] (clipped) as 8-bit, atomically.

    The format follows the suffix; 16-bit PNG is written when the suffix is ``.png`` and
    ``image`` is uint16.
    """
    path = Path(path)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(f"cannot write {path}: expected (H, W, 3), got {image.shape}")
    if image.dtype == np.uint16:
        pixels = image
    else:
        if not np.isfinite(image).all():
            raise ImageError(f"cannot write {path}: image holds NaN or Inf")
        pixels = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    ok, encoded = cv2.imencode(path.suffix or ".png", cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ImageError(f"cannot encode {path}: unsupported suffix {path.suffix!r}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(encoded.tobytes())


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) float array -> (1, 3, H, W) float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).unsqueeze(0).float()


def tensor_to_image(tensor: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) or (3, H, W) tensor -> (H, W, 3) float32 array (not clipped)."""
    if tensor.dim() == 4:
        if tensor.shape[0] != 1:
            raise ValueError(f"expected a single image, got batch of {tensor.shape[0]}")
        tensor = tensor[0]
    return tensor.detach().float().cpu().numpy().transpose(1, 2, 0)


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
