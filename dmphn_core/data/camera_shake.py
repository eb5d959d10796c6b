"""Offline blurred/sharp pairs made the way GoPro was made, from any sharp photos.

GoPro (Nah et al., 2017) averaged 7-13 consecutive frames of a 240 fps camera that was
being shaken, and took the middle frame as the sharp target. Here one photo stands in for
the scene: a smooth random camera path (translation plus a little rotation) warps it into
``subframes`` sub-frames, which are averaged in *linear* light (sRGB decoded, averaged,
re-encoded; written as ``blur_gamma``) and, as GoPro's ``blur`` folder is, directly in sRGB.
The path is centred so the middle sub-frame is the photo itself: the sharp target.

The default source is scikit-image's bundled photos, so everything works offline; pairs are
written in the GoPro layout (``root/<split>/<photo>/{blur,blur_gamma,sharp}/NNNNNN.png``).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import DMPHNError
from ..fileio import write_text_atomic
from ..imageio import list_images, read_image, write_image
from ..samples import HELD_OUT_PHOTOS, TRAIN_PHOTOS, photo_path
from .gopro import SHARP_FOLDER


@dataclass(frozen=True)
class ShakeSettings:
    subframes: int = 11
    #: Largest distance in pixels the camera path travels during the exposure.
    max_shift: float = 12.0
    #: Largest in-plane rotation over the exposure, in degrees.
    max_rotation_deg: float = 1.0
    #: Standard deviation of Gaussian noise added in linear light (0 = none).
    noise_sigma: float = 0.0

    def __post_init__(self) -> None:
        if self.subframes < 3 or self.subframes % 2 == 0:
            raise DMPHNError(f"subframes must be odd and at least 3 (a middle frame is the target), got {self.subframes}")
        if self.max_shift < 0 or self.max_rotation_deg < 0 or self.noise_sigma < 0:
            raise DMPHNError("max_shift, max_rotation_deg and noise_sigma must not be negative")


def srgb_to_linear(image: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 sRGB decoding of values in [0, 1]."""
    return np.where(image <= 0.04045, image / 12.92, ((image + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(image: np.ndarray) -> np.ndarray:
    image = np.clip(image, 0.0, 1.0)
    return np.where(image <= 0.0031308, image * 12.92, 1.055 * image ** (1 / 2.4) - 0.055).astype(np.float32)


def camera_path(rng: np.random.Generator, settings: ShakeSettings) -> np.ndarray:
    """(subframes, 3) rows of (dx, dy, angle_deg); the middle row is exactly zero.

    Translation follows a cubic Bezier curve through random control points (smooth, with
    changing speed and direction, like a hand-held shake); its length is drawn up to
    ``max_shift``. Rotation drifts linearly up to ``max_rotation_deg``.
    """
    t = np.linspace(0.0, 1.0, settings.subframes)[:, None]
    control = rng.normal(size=(4, 2))
    curve = ((1 - t) ** 3) * control[0] + 3 * ((1 - t) ** 2) * t * control[1] + 3 * (1 - t) * t**2 * control[2] + t**3 * control[3]
    length = np.linalg.norm(np.diff(curve, axis=0), axis=1).sum()
    curve *= rng.uniform(0.2, 1.0) * settings.max_shift / max(length, 1e-6)
    angle = rng.uniform(-1.0, 1.0) * settings.max_rotation_deg * (t[:, 0] - 0.5)
    path = np.column_stack([curve, angle])
    return path - path[settings.subframes // 2]


def _warp(image: np.ndarray, dx: float, dy: float, angle_deg: float) -> np.ndarray:
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle_deg, 1.0)
    matrix[:, 2] += (dx, dy)
    return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def shake(sharp: np.ndarray, path: np.ndarray, settings: ShakeSettings, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Blur one (H, W, 3) sRGB image along ``path``: ``{"blur_gamma", "blur", "sharp"}``."""
    linear = srgb_to_linear(sharp)
    linear_sum = np.zeros_like(linear)
    srgb_sum = np.zeros_like(sharp)
    for dx, dy, angle in path:
        warped = _warp(linear, dx, dy, angle)
        linear_sum += warped
        srgb_sum += linear_to_srgb(warped)
    linear_mean = linear_sum / len(path)
    srgb_mean = srgb_sum / len(path)
    if settings.noise_sigma > 0:
        noise = rng.normal(0.0, settings.noise_sigma, size=sharp.shape).astype(np.float32)
        linear_mean = linear_mean + noise
        srgb_mean = linear_to_srgb(srgb_to_linear(srgb_mean) + noise)
    return {"blur_gamma": linear_to_srgb(linear_mean), "blur": np.clip(srgb_mean, 0, 1), SHARP_FOLDER: sharp}


def _random_view(photo: np.ndarray, height: int, width: int, margin: int, rng: np.random.Generator) -> np.ndarray:
    """A random crop of (height + 2 margin, width + 2 margin) at a random scale, randomly flipped."""
    need_h, need_w = height + 2 * margin, width + 2 * margin
    h, w = photo.shape[:2]
    cover = max(need_h / h, need_w / w)
    scale = max(cover, rng.uniform(0.5, 1.0))  # shrinking real photos a little also averages out JPEG noise
    if abs(scale - 1.0) > 1e-3:
        photo = cv2.resize(photo, (max(need_w, round(w * scale)), max(need_h, round(h * scale))),
                           interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    h, w = photo.shape[:2]
    top, left = int(rng.integers(0, h - need_h + 1)), int(rng.integers(0, w - need_w + 1))
    view = photo[top : top + need_h, left : left + need_w]
    if rng.random() < 0.5:
        view = view[:, ::-1]
    return np.ascontiguousarray(np.clip(view, 0.0, 1.0))


def reduce_contrast(view: np.ndarray, factor: float) -> np.ndarray:
    """Pull an sRGB (H, W, 3) view towards its mean grey by ``factor`` in (0, 1]; stays in [0, 1].

    Most bundled training photos are high-contrast (text, coins, brick); scaling some views
    down shows the model flat, low-contrast content too, where linear-light blur brightens
    little and there is little to sharpen.
    """
    mean = float(view.mean())
    return (mean + factor * (view - mean)).astype(np.float32)


def check_min_contrast(min_contrast: float) -> None:
    if not 0.0 < min_contrast <= 1.0:
        raise DMPHNError(f"min contrast must be in (0, 1], got {min_contrast}")


def _contrast_factor(min_contrast: float, rng: np.random.Generator) -> float:
    """Log-uniform in [min_contrast, 1], so every octave of contrast is drawn as often."""
    return float(np.exp(rng.uniform(np.log(min_contrast), 0.0)))


def synthesize(
    sources: list[Path],
    out_root: str | os.PathLike,
    split: str,
    *,
    pairs_per_photo: int = 20,
    size: tuple[int, int] = (256, 256),
    settings: ShakeSettings = ShakeSettings(),
    seed: int = 0,
    min_contrast: float = 1.0,
) -> int:
    """Write ``pairs_per_photo`` pairs of ``size`` for each source photo; returns the count.

    Each photo becomes one "sequence" folder. A margin around every crop keeps the warp's
    border fill out of the written images. With ``min_contrast`` < 1 each view's contrast is
    scaled by a factor drawn log-uniformly from [min_contrast, 1] before it is shaken; views
    and camera paths stay those of ``min_contrast=1``.
    """
    if not sources:
        raise DMPHNError("no source photos")
    check_min_contrast(min_contrast)
    height, width = size
    margin = int(np.ceil(settings.max_shift + np.deg2rad(settings.max_rotation_deg) * max(height, width))) + 2
    written = 0
    for photo_index, source in enumerate(sources):
        photo = read_image(source)
        sequence = Path(out_root) / split / Path(source).stem
        for k in range(pairs_per_photo):
            rng = np.random.default_rng([seed, photo_index, k])
            view = _random_view(photo, height, width, margin, rng)
            if min_contrast < 1.0:  # own stream: the view and camera path do not change with it
                contrast_rng = np.random.default_rng([seed, photo_index, k, 1])
                view = reduce_contrast(view, _contrast_factor(min_contrast, contrast_rng))
            images = shake(view, camera_path(rng, settings), settings, rng)
            for folder, image in images.items():
                (sequence / folder).mkdir(parents=True, exist_ok=True)
                write_image(sequence / folder / f"{k:06d}.png", image[margin : margin + height, margin : margin + width])
            written += 1
    return written


#: Splits the generator writes, each with the offset it adds to the seed. ``val`` cuts fresh
#: views and camera paths from the training photos (for choosing checkpoints); ``test`` uses
#: photos that no other split sees. train and test keep the offsets they had before val
#: existed, so their pairs stay the same.
SPLIT_SEED_OFFSETS = {"train": 0, "val": 2, "test": 1}
SPLITS = tuple(SPLIT_SEED_OFFSETS)


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise DMPHNError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")


def bundled_sources(split: str) -> list[Path]:
    """scikit-image's bundled photos for ``split``: training photos for train and val, held-out for test."""
    check_split(split)
    return [photo_path(name) for name in (HELD_OUT_PHOTOS if split == "test" else TRAIN_PHOTOS)]


def folder_sources(folder: str | os.PathLike) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise DMPHNError(f"source folder not found: {folder}")
    photos = list_images(folder)
    if not photos:
        raise DMPHNError(f"no images in {folder}")
    return photos


def write_provenance(out_root: str | os.PathLike, record: dict) -> None:
    path = Path(out_root) / "synth.json"
    existing = json.loads(path.read_text()) if path.is_file() else {}
    existing.update(record)
    write_text_atomic(path, json.dumps(existing, indent=2, sort_keys=True))


def settings_record(settings: ShakeSettings, **extra) -> dict:
    return {**asdict(settings), **extra}
