import math

import numpy as np
import pytest
import torch

from runtimes.compare import DEFAULT_TOLERANCES, Tolerance, compare_outputs, psnr_db, tolerance_for


def test_identical_outputs_pass_with_infinite_psnr():
    x = np.random.default_rng(0).random((1, 3, 4, 4)).astype(np.float32)
    result = compare_outputs(x, x.copy(), DEFAULT_TOLERANCES["fp32"])
    assert result.passed and result.max_abs == 0 and math.isinf(result.psnr_db)


def test_fp32_bound_is_max_abs():
    ref = np.zeros((1, 3, 8, 8))
    out = ref.copy()
    out[0, 0, 0, 0] = 2e-4
    result = compare_outputs(out, ref, DEFAULT_TOLERANCES["fp32"])
    assert not result.passed and result.max_abs == pytest.approx(2e-4)
    assert compare_outputs(out / 4, ref, DEFAULT_TOLERANCES["fp32"]).passed


def test_fp16_bound_is_psnr():
    ref = np.zeros((1, 3, 100, 100))
    noise = np.random.default_rng(1).normal(0, 1e-3, ref.shape)  # ~60 dB
    assert compare_outputs(ref + noise, ref, DEFAULT_TOLERANCES["fp16"]).passed
    assert not compare_outputs(ref + 10 * noise, ref, DEFAULT_TOLERANCES["fp16"]).passed  # ~40 dB


def test_nan_never_passes_and_shapes_must_match():
    ref = np.zeros((1, 3, 2, 2))
    out = ref.copy()
    out[0, 0, 0, 0] = np.nan
    result = compare_outputs(out, ref, Tolerance())
    assert not result.passed and not result.finite
    with pytest.raises(ValueError, match="shape"):
        compare_outputs(np.zeros((1, 3, 2, 3)), ref, Tolerance())


def test_psnr_value_and_torch_inputs():
    a = torch.zeros(1, 3, 10, 10)
    assert psnr_db(a, a + 0.1) == pytest.approx(20.0)


def test_tolerance_overrides_keep_other_bounds():
    tol = tolerance_for("fp16", min_psnr_db=50)
    assert tol.min_psnr_db == 50 and tol.max_abs is None
    assert tolerance_for("fp32", max_abs=1e-3).max_abs == 1e-3
    assert "psnr>=50dB" in tol.describe()
