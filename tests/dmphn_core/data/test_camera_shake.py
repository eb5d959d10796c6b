import numpy as np
import pytest

from dmphn_core.data.camera_shake import (
    ShakeSettings,
    bundled_sources,
    camera_path,
    linear_to_srgb,
    reduce_contrast,
    shake,
    srgb_to_linear,
    synthesize,
)
from dmphn_core.data.gopro import find_pairs
from dmphn_core.errors import DMPHNError
from dmphn_core.imageio import read_image
from dmphn_core.metrics import psnr
from dmphn_core.samples import sample_photo


def test_srgb_round_trip_and_known_values():
    x = np.linspace(0, 1, 1001, dtype=np.float32)
    np.testing.assert_allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-5)
    assert srgb_to_linear(np.float32(0.5)) == pytest.approx(0.2140, abs=1e-4)  # IEC 61966-2-1


def test_camera_path_is_centred_smooth_and_bounded():
    settings = ShakeSettings(subframes=11, max_shift=20.0, max_rotation_deg=2.0)
    for seed in range(20):
        path = camera_path(np.random.default_rng(seed), settings)
        assert path.shape == (11, 3)
        np.testing.assert_array_equal(path[5], 0.0)
        assert np.linalg.norm(np.diff(path[:, :2], axis=0), axis=1).sum() <= 20.0 + 1e-6
        assert np.abs(path[:, 2]).max() <= 2.0
    same = camera_path(np.random.default_rng(7), settings)
    np.testing.assert_array_equal(same, camera_path(np.random.default_rng(7), settings))


def test_no_motion_gives_the_sharp_image_back():
    image = sample_photo(48, 64, "astronaut.png")
    settings = ShakeSettings()
    out = shake(image, np.zeros((11, 3)), settings, np.random.default_rng(0))
    np.testing.assert_allclose(out["blur_gamma"], image, atol=1e-5)
    np.testing.assert_allclose(out["blur"], image, atol=1e-5)
    assert out["sharp"] is image


def test_motion_blurs_and_linear_light_average_differs_from_srgb_average():
    image = sample_photo(96, 96, "astronaut.png")
    settings = ShakeSettings(max_shift=16.0)
    path = camera_path(np.random.default_rng(1), settings)
    out = shake(image, path, settings, np.random.default_rng(1))
    assert psnr(out["blur_gamma"], image) < 32
    # averaging in linear light brightens edges relative to sRGB averaging (Jensen): not the same image
    assert out["blur_gamma"].mean() > out["blur"].mean()
    assert np.abs(out["blur_gamma"] - out["blur"]).max() > 1e-3


def test_synthesize_writes_a_gopro_layout_the_loader_reads(tmp_path):
    sources = bundled_sources("test")[:2]
    count = synthesize(sources, tmp_path, "test", pairs_per_photo=2, size=(32, 48), seed=0)
    assert count == 4
    pairs = find_pairs(tmp_path, "test", "blur_gamma")
    assert len(pairs) == 4 and len(find_pairs(tmp_path, "test", "blur")) == 4
    assert read_image(pairs[0].blurred).shape == (32, 48, 3)
    again = tmp_path / "again"
    synthesize(sources, again, "test", pairs_per_photo=2, size=(32, 48), seed=0)
    np.testing.assert_array_equal(read_image(pairs[0].blurred), read_image(find_pairs(again, "test")[0].blurred))


def test_reduce_contrast_keeps_the_mean_and_scales_deviations():
    view = sample_photo(32, 32)
    flatter = reduce_contrast(view, 0.25)
    assert flatter.dtype == np.float32 and 0.0 <= flatter.min() and flatter.max() <= 1.0
    assert flatter.mean() == pytest.approx(view.mean(), abs=1e-6)
    np.testing.assert_allclose(flatter - flatter.mean(), 0.25 * (view - view.mean()), atol=1e-6)


def test_min_contrast_flattens_the_same_views_within_its_range(tmp_path):
    sources = bundled_sources("train")[:2]  # astronaut and chelsea: colour photos, far from flat
    synthesize(sources, tmp_path / "plain", "train", pairs_per_photo=3, size=(32, 32), seed=0)
    synthesize(sources, tmp_path / "flat", "train", pairs_per_photo=3, size=(32, 32), seed=0, min_contrast=0.25)
    factors = []
    pairs = zip(find_pairs(tmp_path / "plain", "train"), find_pairs(tmp_path / "flat", "train"), strict=True)
    for plain, flat in pairs:
        a, b = read_image(plain.sharp), read_image(flat.sharp)
        factor = b.std() / a.std()
        # same view, only flattened around the mean of the whole view (the written image is its
        # centre, so compare deviations; 8-bit PNG rounding allows 1/255)
        np.testing.assert_allclose(b - b.mean(), factor * (a - a.mean()), atol=1.5 / 255)
        factors.append(factor)
    assert all(0.25 - 0.01 <= f <= 1.0 + 0.01 for f in factors)
    assert min(factors) < 0.9  # six draws from [0.25, 1] log-uniform: not all near 1
    with pytest.raises(DMPHNError, match="min contrast"):
        synthesize(sources, tmp_path / "bad", "train", pairs_per_photo=1, size=(32, 32), min_contrast=0.0)
    assert not (tmp_path / "bad").exists()


def test_held_out_photos_never_train_or_validate():
    assert not {p.name for p in bundled_sources("train")} & {p.name for p in bundled_sources("test")}
    assert bundled_sources("val") == bundled_sources("train")
    with pytest.raises(DMPHNError, match="unknown split"):
        bundled_sources("holdout")


def test_bad_settings():
    with pytest.raises(DMPHNError, match="odd"):
        ShakeSettings(subframes=4)
    with pytest.raises(DMPHNError, match="negative"):
        ShakeSettings(max_shift=-1)
