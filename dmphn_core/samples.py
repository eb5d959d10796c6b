"""Photos that ship inside an installed package (scikit-image), so nothing is downloaded.

Used as the "real photo" in export verification and parity runs, as the default source of
offline training pairs, and by the demo.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .errors import DMPHNError
from .imageio import read_image

#: Natural photographs among scikit-image's bundled files (no synthetic or binary images).
#: The held-out photos never feed training (the stereo pair motorcycle_left/right stays
#: together on the training side); ``rocket.jpg`` (427x640) is the demo's photo.
TRAIN_PHOTOS = (
    "astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "motorcycle_right.png", "camera.png",
    "brick.png", "grass.png", "gravel.png", "coins.png", "page.png", "text.png", "ihc.png",
)
HELD_OUT_PHOTOS = ("rocket.jpg", "hubble_deep_field.jpg", "retina.jpg", "moon.png")


def photo_folder() -> Path:
    try:
        import skimage.data
    except ImportError as exc:  # pragma: no cover - scikit-image is a dependency
        raise DMPHNError("scikit-image is not installed; it provides the bundled sample photos") from exc
    return Path(skimage.data.data_dir)


def photo_path(name: str) -> Path:
    path = photo_folder() / name
    if not path.is_file():
        raise DMPHNError(f"bundled photo {name} is missing from {path.parent}")
    return path


def sample_photo(height: int, width: int, name: str = "astronaut.png") -> np.ndarray:
    """A bundled photo scaled to cover ``height x width`` and centre-cropped: (H, W, 3) float32."""
    image = read_image(photo_path(name))
    h, w = image.shape[:2]
    scale = max(height / h, width / w)
    if scale != 1.0:
        size = (max(width, round(w * scale)), max(height, round(h * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    top, left = (image.shape[0] - height) // 2, (image.shape[1] - width) // 2
    return np.ascontiguousarray(np.clip(image[top : top + height, left : left + width], 0.0, 1.0))
