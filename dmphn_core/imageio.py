"""Image files <-> float RGB arrays and tensors. OpenCV does the codecs."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from .errors import ImageError
from .fileio import atomic_path
from .imagecheck import check_image_file, check_pixel_count

#: Suffixes the deblur and dataset code pick up when given a folder.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
#: Suffixes whose files OpenCV writes with an alpha channel / with 16 bits per channel.
ALPHA_SUFFIXES = (".png", ".tif", ".tiff", ".webp")
DEEP_SUFFIXES = (".png", ".tif", ".tiff")


@dataclass(frozen=True)
class ImageFormat:
    """How a file stored its pixels, so that a processed image can be stored the same way.

    The model sees RGB only; ``write_image(..., like=fmt)`` gives the output the input's
    grey-ness, alpha channel (unchanged, (H, W) in [0, 1]) and bit depth back.
    """

    channels: int  # 1 grey, 3 RGB, 4 RGBA
    bit_depth: int  # 8, 16 (32: float files)
    alpha: np.ndarray | None = field(default=None, repr=False, compare=False)

    def describe(self) -> str:
        kind = {1: "grey", 3: "RGB", 4: "RGBA"}[self.channels]
        return f"{self.bit_depth}-bit {kind}"


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as float32 RGB, (H, W, 3), in [0, 1].

    Grey images are repeated to 3 channels, alpha is dropped, 16-bit images are scaled;
    ``read_image_and_format`` also returns what was dropped, to write it back.
    """
    return read_image_and_format(path)[0]


def read_image_and_format(path: str | os.PathLike, *, max_pixels: int | None = None) -> tuple[np.ndarray, ImageFormat]:
    """``read_image`` plus the file's ``ImageFormat`` (channels, bit depth, alpha).

    Refused before decoding (ImageError): a header over the pixel limit (``max_pixels``, default
    :func:`dmphn_core.imagecheck.max_pixels`), a truncated or corrupt PNG/JPEG; any decoder failure
    is an ImageError too.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"image not found: {path}")
    data = check_image_file(path, max_pixels)
    try:
        raw = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:  # OpenCV's own limits and decoder failures: this file's problem
        raise ImageError(f"cannot decode image {path}: {_opencv_reason(exc)}") from None
    if raw is None or raw.size == 0:
        raise ImageError(f"cannot decode image {path}: corrupt or unsupported format")
    check_pixel_count(path, (raw.shape[1], raw.shape[0]), max_pixels)  # formats whose header we do not parse
    if raw.dtype == np.uint8:
        scale = 255.0
    elif raw.dtype == np.uint16:
        scale = 65535.0
    elif raw.dtype == np.float32:
        scale = 1.0
    else:
        raise ImageError(f"{path}: unsupported pixel type {raw.dtype}")
    alpha = None
    if raw.ndim == 2 or raw.shape[2] == 1:
        channels, rgb = 1, cv2.cvtColor(raw.reshape(raw.shape[:2]), cv2.COLOR_GRAY2RGB)
    elif raw.shape[2] == 4:
        channels, rgb = 4, cv2.cvtColor(raw, cv2.COLOR_BGRA2RGB)
        alpha = raw[..., 3].astype(np.float32) / scale
    elif raw.shape[2] == 3:
        channels, rgb = 3, cv2.cvtColor(raw, cv2.COLOR_BGR2RGB)
    else:
        raise ImageError(f"{path}: {raw.shape[2]} channels; expected grey, RGB or RGBA")
    image = rgb.astype(np.float32) / scale
    if not np.isfinite(image).all():
        raise ImageError(f"{path}: image holds NaN or Inf")
    bit_depth = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16}.get(raw.dtype, 32)
    return image, ImageFormat(channels, bit_depth, alpha)


def _opencv_reason(exc: Exception) -> str:
    """The reason in an OpenCV error ("... error: (-215:Assertion failed) <reason> in function ..."), or its first line."""
    text = str(exc).strip()
    return (getattr(exc, "err", "") or (text.splitlines() or [type(exc).__name__])[-1]).strip()


def write_image(path: str | os.PathLike, image: np.ndarray, *, like: ImageFormat | None = None) -> list[str]:
    """Write float RGB (H, W, 3) in [0, 1] (clipped) atomically; the format follows the suffix.

    8-bit by default; a uint16 ``image`` is written as is (16-bit PNG / TIFF). With ``like``
    (from ``read_image_and_format``) the file gets the source's form back where the suffix
    allows it: grey stays grey (the mean of R, G, B), alpha is put back unchanged, 16-bit
    stays 16-bit. Returns one note per thing the suffix could not keep (empty: nothing lost).
    """
    path = Path(path)
    suffix = (path.suffix or ".png").lower()
    if image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(f"cannot write {path}: expected (H, W, 3), got {image.shape}")
    notes: list[str] = []
    deep = image.dtype == np.uint16
    if not deep:
        if not np.isfinite(image).all():
            raise ImageError(f"cannot write {path}: image holds NaN or Inf")
        image = np.clip(image, 0.0, 1.0)
    if like is not None and like.bit_depth > 8 and not deep:
        if suffix in DEEP_SUFFIXES:
            deep = True
        else:
            notes.append(f"{like.bit_depth}-bit input written as 8-bit ({suffix} has no 16-bit form)")
    scale = 65535.0 if deep else 255.0
    dtype = np.uint16 if deep else np.uint8
    pixels = image if image.dtype == np.uint16 else (image * scale + 0.5).astype(dtype)
    if like is not None and like.channels == 1:
        # the model saw the grey image repeated in R, G and B; give back one channel
        out = (pixels.astype(np.float32).mean(axis=2) + 0.5).astype(dtype)
    else:
        out = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    if like is not None and like.alpha is not None:
        if like.alpha.shape != out.shape[:2]:
            raise ImageError(f"cannot write {path}: alpha is {like.alpha.shape}, image {out.shape[:2]}")
        if suffix in ALPHA_SUFFIXES:
            alpha = (np.clip(like.alpha, 0.0, 1.0) * scale + 0.5).astype(dtype)
            out = np.dstack([out, alpha])
        else:
            notes.append(f"alpha channel dropped ({suffix} has none)")
    ok, encoded = cv2.imencode(suffix, out)
    if not ok:
        raise ImageError(f"cannot encode {path}: unsupported suffix {path.suffix!r}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(encoded.tobytes())
    return notes


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
