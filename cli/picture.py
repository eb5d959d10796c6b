"""The demo's comparison picture: labelled panels side by side, and a zoomed row where they differ most."""

from __future__ import annotations

import cv2
import numpy as np

from dmphn_core.errors import DMPHNError

_WHITE = 1.0
_LABEL_HEIGHT = 26


def _labelled(image: np.ndarray, label: str) -> np.ndarray:
    """``image`` (H, W, 3) with a white strip above it holding ``label`` in black."""
    width = image.shape[1]
    scale = 0.35 if width < 240 else 0.5 if width < 900 else 1.0  # small crops (--crop) small text, whole frames large
    height = round(_LABEL_HEIGHT * max(1.0, scale / 0.5))
    strip = np.full((height, width, 3), 255, np.uint8)  # OpenCV draws text on 8-bit images only
    cv2.putText(strip, label, (4, height - round(8 * max(1.0, scale / 0.5))), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0),
                1 if scale < 1 else 2, cv2.LINE_AA)
    return np.concatenate([strip.astype(np.float32) / 255.0, image.astype(np.float32)], axis=0)


def _side_by_side(*images: np.ndarray, gap: int = 8) -> np.ndarray:
    height = images[0].shape[0]
    spacer = np.full((height, gap, 3), _WHITE, np.float32)
    parts = [part for image in images for part in (image, spacer)][:-1]
    return np.concatenate(parts, axis=1)


def most_changed_window(before: np.ndarray, after: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left (y, x) of the ``size`` x ``size`` window where ``after`` differs most from ``before``
    (mean absolute difference over the window and the channels)."""
    diff = np.abs(after.astype(np.float32) - before.astype(np.float32)).mean(axis=2)
    # mean over every size x size window, anchored at its top-left corner
    window_mean = cv2.boxFilter(diff, -1, (size, size), anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)
    valid = window_mean[: diff.shape[0] - size + 1, : diff.shape[1] - size + 1]
    y, x = np.unravel_index(int(np.argmax(valid)), valid.shape)
    return int(y), int(x)


def comparison_picture(blurred: np.ndarray, deblurred: np.ndarray, sharp: np.ndarray, labels: tuple[str, str, str]) -> np.ndarray:
    """Three labelled panels and below them the same three zoomed in where deblurring changed most.

    The zoomed window is outlined in red on the full panels. Returns (H', W', 3) float in [0, 1].
    """
    height, width = sharp.shape[:2]
    size = max(8, min(height, width) // 4)
    y, x = most_changed_window(blurred, deblurred, size)
    zoom = max(1, min(4, width // size))  # up to 4x: enough to see edges, small enough to keep the file light
    panels, crops = [], []
    for image, label in zip((blurred, deblurred, sharp), labels):
        crop = cv2.resize(image[y : y + size, x : x + size], (size * zoom, size * zoom), interpolation=cv2.INTER_NEAREST)
        crop = np.pad(crop, ((0, 0), (0, width - size * zoom), (0, 0)), constant_values=_WHITE)
        outlined = np.ascontiguousarray(np.clip(image, 0.0, 1.0), dtype=np.float32).copy()
        cv2.rectangle(outlined, (x, y), (x + size - 1, y + size - 1), (1.0, 0.0, 0.0), 1)
        panels.append(_labelled(outlined, label))
        crops.append(_labelled(crop, f"zoom x{zoom}: most changed" if not crops else ""))
    top, bottom = _side_by_side(*panels), _side_by_side(*crops)
    return np.concatenate([top, np.full((8, top.shape[1], 3), _WHITE, np.float32), bottom], axis=0)


def centre_crop(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """The ``height`` x ``width`` middle of ``image`` (--crop); a DMPHNError when it is larger."""
    h, w = image.shape[:2]
    if height > h or width > w:
        raise DMPHNError(f"--crop {height}x{width} (HxW) is larger than the image ({h}x{w} HxW)")
    top, left = (h - height) // 2, (w - width) // 2
    return np.ascontiguousarray(image[top : top + height, left : left + width])
