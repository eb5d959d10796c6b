import warnings

import numpy as np
import pytest
import torch

from dmphn_core.metrics import batch_psnr, psnr, ssim


def test_psnr_matches_its_definition_and_batch_version():
    rng = np.random.default_rng(0)
    target = rng.random((20, 30, 3), dtype=np.float32)
    prediction = np.clip(target + rng.normal(0, 0.05, target.shape).astype(np.float32), 0, 1)
    expected = 10 * np.log10(1.0 / np.mean((prediction - target) ** 2))
    assert psnr(prediction, target) == pytest.approx(expected, abs=1e-3)
    to_t = lambda a: torch.from_numpy(a.transpose(2, 0, 1))[None]
    assert batch_psnr(to_t(prediction), to_t(target)).item() == pytest.approx(expected, abs=1e-3)


def test_ssim_is_one_for_identical_and_lower_for_noisy():
    rng = np.random.default_rng(0)
    target = rng.random((32, 32, 3), dtype=np.float32)
    assert ssim(target, target) == pytest.approx(1.0)
    assert ssim(np.clip(target + 0.2 * rng.standard_normal(target.shape).astype(np.float32), 0, 1), target) < 0.9


def test_prediction_is_clipped_and_shapes_checked():
    target = np.full((8, 8, 3), 1.0, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # inf is the answer for identical images, not a RuntimeWarning
        assert psnr(np.full_like(target, 2.0), target) == float("inf")
    with pytest.raises(ValueError, match="sizes differ"):
        psnr(target[:4], target)
