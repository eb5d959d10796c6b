"""Image quality metrics: PSNR and SSIM on float RGB images in [0, 1].

SSIM is scikit-image's implementation (Gaussian window, sigma 1.5, as in Wang et al. 2004
and the usual deblurring papers), so numbers are comparable with published tables.
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


def psnr(prediction: np.ndarray, target: np.ndarray) -> float:
    """PSNR in dB of (H, W, 3) float images; ``prediction`` is clipped to [0, 1] first."""
    _check_pair(prediction, target)
    # identical images: PSNR is inf, the answer rather than a fault, so numpy's divide warning is not shown
    with np.errstate(divide="ignore"):
        return float(peak_signal_noise_ratio(target, np.clip(prediction, 0.0, 1.0), data_range=1.0))


def ssim(prediction: np.ndarray, target: np.ndarray) -> float:
    """SSIM of (H, W, 3) float images over the RGB channels; ``prediction`` clipped to [0, 1]."""
    _check_pair(prediction, target)
    return float(
        structural_similarity(
            target, np.clip(prediction, 0.0, 1.0), channel_axis=2, data_range=1.0, gaussian_weights=True, sigma=1.5,
            use_sample_covariance=False,
        )
    )


def batch_psnr(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of (B, 3, H, W) tensors (for validation during training)."""
    if prediction.shape != target.shape:
        raise ValueError(f"shapes differ: {tuple(prediction.shape)} vs {tuple(target.shape)}")
    mse = (prediction.float().clamp(0, 1) - target.float()).pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(1.0 / mse.clamp_min(1e-12))


def _check_pair(prediction: np.ndarray, target: np.ndarray) -> None:
    if prediction.shape != target.shape:
        raise ValueError(f"image sizes differ: {prediction.shape} vs {target.shape}")
    if prediction.ndim != 3 or prediction.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) images, got {prediction.shape}")
