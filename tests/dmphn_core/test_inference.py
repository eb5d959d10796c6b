import numpy as np
import pytest
import torch

from dmphn_core.errors import DMPHNError, ImageError
from dmphn_core.geometry import pad_to_block
from dmphn_core.inference import Deblurrer, deblur_image
from dmphn_core.model import DMPHNConfig
from dmphn_core.samples import sample_photo
from dmphn_core.tiling import blend_weights, tile_starts
from runtimes.base import Runner
from runtimes.compare import psnr_db
from runtimes.torch_eager import TorchRunner
from runtimes.torchscript import TorchScriptRunner
from tests.conftest import random_model


class PointwiseRunner(Runner):
    """Model-free runner computing ``0.5 x + 0.1`` per pixel, so any tiling must reproduce it exactly.

    ``input_shape`` mimics a static artifact; every call's input shape is recorded.
    """

    runtime = "pointwise"

    def __init__(self, input_shape=None, levels: int = 1) -> None:
        super().__init__()
        self._shape = input_shape
        self._levels = levels
        self.calls: list[tuple[int, ...]] = []

    def _activate(self) -> None:
        self.input_shape = self._shape
        self.model_config = DMPHNConfig(levels=self._levels)

    def _infer(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(tuple(x.shape))
        return x * 0.5 + 0.1


def _random_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((height, width, 3), dtype=np.float32)


# -- tile layout ----------------------------------------------------------------------


@pytest.mark.parametrize(("size", "tile", "overlap"), [(64, 64, 32), (100, 32, 8), (427, 128, 32), (130, 64, 0), (65, 64, 32)])
def test_tile_starts_cover_the_image_and_end_flush(size, tile, overlap):
    starts = tile_starts(size, tile, overlap)
    assert starts[0] == 0 and starts[-1] == size - tile
    assert all(0 < b - a <= tile - overlap for a, b in zip(starts, starts[1:]))
    covered = np.zeros(size, bool)
    for start in starts:
        covered[start : start + tile] = True
    assert covered.all()


def test_tile_starts_reject_impossible_layouts():
    with pytest.raises(ValueError):
        tile_starts(100, 32, 32)
    with pytest.raises(ValueError):
        tile_starts(20, 32, 8)


def test_blend_weights_are_positive_ramps_only_towards_neighbours():
    starts = tile_starts(100, 40, 10)  # [0, 30, 60]
    weights = blend_weights(starts, 40)
    assert all((w > 0).all() and (w <= 1).all() for w in weights)
    assert weights[0][0] == 1 and weights[-1][-1] == 1  # image borders: no ramp
    assert weights[0][-1] < 0.1 and weights[1][0] < 0.1  # inner borders: almost nothing
    assert (weights[1][15:25] == 1).all()
    total = torch.zeros(100)
    for start, weight in zip(starts, weights):
        total[start : start + 40] += weight
    # cross-fades of two tiles over an overlap sum to 1
    torch.testing.assert_close(total, torch.ones(100))
    assert (blend_weights([0], 64)[0] == 1).all()


# -- tiling with model-free runners ---------------------------------------------------


def test_constant_image_stays_constant_through_tiles():
    with PointwiseRunner(input_shape=(1, 3, 32, 48)) as runner:
        out = Deblurrer(runner, overlap=16).deblur(np.full((70, 100, 3), 0.3, np.float32), clamp=False)
    assert len(runner.calls) > 4
    np.testing.assert_allclose(out, 0.25, atol=1e-6)


def test_static_artifact_is_tiled_and_blending_reproduces_a_pointwise_model():
    image = _random_image(70, 100)
    with PointwiseRunner(input_shape=(1, 3, 32, 48)) as runner:
        deblurrer = Deblurrer(runner, overlap=16)
        plan = deblurrer.plan(70, 100)
        out = deblurrer.deblur(image, clamp=False)
    assert plan.tile_hw == (32, 48) and plan.padded_hw == (72, 100)
    assert plan.rows == (0, 16, 32, 40) and plan.cols == (0, 32, 52)  # block (4) multiples, last flush
    assert set(runner.calls) == {(1, 3, 32, 48)} and len(runner.calls) == plan.count
    assert out.shape == image.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, image * 0.5 + 0.1, atol=1e-6)


def test_image_smaller_than_the_fixed_tile_is_padded_up_and_cropped_back():
    image = _random_image(40, 50)
    with PointwiseRunner(input_shape=(1, 3, 64, 64)) as runner:
        out = deblur_image(runner, image, clamp=False)
    assert runner.calls == [(1, 3, 64, 64)]
    np.testing.assert_allclose(out, image * 0.5 + 0.1, atol=1e-6)


def test_fixed_batch_gets_full_batches_of_tiles():
    image = _random_image(64, 160)
    with PointwiseRunner(input_shape=(4, 3, 32, 64)) as runner:
        deblurrer = Deblurrer(runner, overlap=16)
        out = deblurrer.deblur(image, clamp=False)
        count = deblurrer.plan(64, 160).count
    assert count == 9 and runner.calls == [(4, 3, 32, 64)] * 3  # the last batch is filled with repeats
    np.testing.assert_allclose(out, image * 0.5 + 0.1, atol=1e-6)


def test_dynamic_batch_runs_tile_batch_tiles_per_call():
    image = _random_image(64, 96)
    with PointwiseRunner() as runner:
        out = Deblurrer(runner, tile=32, overlap=8, tile_batch=4).deblur(image, clamp=False)
    assert [shape[0] for shape in runner.calls] == [4, 4, 4]  # 3 x 4 tiles
    np.testing.assert_allclose(out, image * 0.5 + 0.1, atol=1e-6)


def test_user_tile_is_rounded_up_to_the_size_block_and_capped_by_the_image():
    with PointwiseRunner(levels=4) as runner:  # block 8 x 16
        plan = Deblurrer(runner, tile=100).plan(61, 300)
    assert plan.tile_hw == (64, 112) and plan.rows == (0,)


@pytest.mark.parametrize(("levels", "input_shape", "tile", "block"), [(4, None, 100, (8, 16)), (2, (1, 3, 36, 40), None, (4, 8))])
def test_tile_offsets_and_overlaps_stay_on_the_block_grid(levels, input_shape, tile, block):
    with PointwiseRunner(input_shape, levels=levels) as runner:
        plan = Deblurrer(runner, tile=tile, overlap=21).plan(301, 427)
    assert plan.count > 4
    for starts, overlap, padded, step in zip((plan.rows, plan.cols), plan.overlap_hw, plan.padded_hw, block):
        assert all(start % step == 0 for start in starts) and overlap % step == 0 and padded % step == 0


def test_artifact_without_model_config_uses_a_block_dividing_its_shape():
    class Unnamed(PointwiseRunner):
        def _activate(self) -> None:
            self.input_shape = self._shape  # no model_config: e.g. an engine without its sidecar

    image = _random_image(50, 70)
    with Unnamed(input_shape=(1, 3, 36, 36)) as runner:
        deblurrer = Deblurrer(runner)
        plan = deblurrer.plan(50, 70)
        out = deblurrer.deblur(image, clamp=False)
    assert plan.padded_hw == (52, 72) and all(start % 4 == 0 for start in plan.rows + plan.cols)
    np.testing.assert_allclose(out, image * 0.5 + 0.1, atol=1e-6)


def test_whole_image_path_pads_to_the_block_and_crops_back():
    image = _random_image(61, 99)
    with PointwiseRunner(levels=4) as runner:
        out = Deblurrer(runner).deblur(image, clamp=False)
    assert runner.calls == [(1, 3, 64, 112)]
    np.testing.assert_allclose(out, image * 0.5 + 0.1, atol=1e-6)


def test_clamp_clips_and_unclamped_keeps_range():
    image = np.full((8, 8, 3), 1.0, np.float32)
    with PointwiseRunner() as runner:
        deblurrer = Deblurrer(runner)
        assert deblurrer.deblur(image * 1.9, clamp=False).max() == pytest.approx(1.05)
        assert deblurrer.deblur(image * 1.9, clamp=True).max() == 1.0


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((8, 8), np.float32), "RGB"),
        (np.zeros((8, 8, 4), np.float32), "RGB"),
        (np.zeros((8, 8, 3), np.uint8), "float"),
        (np.full((8, 8, 3), np.nan, np.float32), "NaN"),
    ],
)
def test_bad_images_are_rejected_with_one_line(bad, message):
    with PointwiseRunner() as runner, pytest.raises(ImageError, match=message):
        Deblurrer(runner).deblur(bad)


def test_bad_options_are_user_errors():
    with PointwiseRunner() as runner:
        for kwargs in ({"tile": 0}, {"overlap": -1}, {"tile_batch": 0}):
            with pytest.raises(DMPHNError):
                Deblurrer(runner, **kwargs)


# -- a real (random-weight) model -----------------------------------------------------


def test_non_multiple_size_matches_padded_model_run_and_input_is_untouched():
    model = random_model(1)
    image = sample_photo(45, 70, "coffee.png")
    before = image.copy()
    with TorchRunner(model) as runner:
        out = deblur_image(runner, image, clamp=False)
    assert out.shape == (45, 70, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(image, before)
    x = torch.from_numpy(image.transpose(2, 0, 1)).unsqueeze(0)
    padded, _ = pad_to_block(x, model.geometry)
    with torch.inference_mode():
        expected = model(padded)[0, :, :45, :70].numpy().transpose(1, 2, 0)
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_tiles_match_whole_image_far_from_tile_borders():
    # One level sees 64 px around each pixel (measured by the gradient of one output pixel),
    # so pixels at least 64 px from every inner tile border must come out the same. The size
    # is not a block multiple: tiles must still start on the whole image's stride-4 grid.
    model = random_model(1, seed=3)
    image = sample_photo(126, 318, "rocket.jpg")
    before = image.copy()
    with TorchRunner(model) as runner:
        whole = Deblurrer(runner).deblur(image, clamp=False)
        tiled_deblurrer = Deblurrer(runner, tile=192, overlap=32)
        tiled = tiled_deblurrer.deblur(image, clamp=False)
    np.testing.assert_array_equal(image, before)
    plan = tiled_deblurrer.plan(126, 318)
    assert plan.padded_hw == (128, 320) and plan.cols == (0, 128)  # tile 0: cols 0-191, tile 1: cols 128-319
    far = np.r_[0:128, 192:318]
    np.testing.assert_allclose(tiled[:, far], whole[:, far], atol=1e-4)
    assert np.abs(tiled - whole).max() > 1e-4  # the overlap does differ: the test can see seams
    assert psnr_db(tiled, whole) >= 55.0  # measured 77.6 dB


def test_tile_grid_stays_close_to_whole_image_on_a_real_photo():
    # Two levels: the tiles' left|right patches differ from the whole image's too.
    # Measured 46.0 dB (2026-11-25, this seed and photo).
    image = sample_photo(96, 160, "rocket.jpg")
    with TorchRunner(random_model(2, seed=4)) as runner:
        whole = Deblurrer(runner).deblur(image, clamp=False)
        deblurrer = Deblurrer(runner, tile=64, overlap=32)
        tiled = deblurrer.deblur(image, clamp=False)
        assert deblurrer.plan(96, 160).count == 8
    assert psnr_db(tiled, whole) >= 40.0


def test_torchscript_artifact_with_fixed_shape_is_tiled(tmp_path):
    from export.to_torchscript import export_torchscript

    model = random_model(1, seed=5)
    path = tmp_path / "m1_32x32.pt"  # a TorchScript archive under the checkpoint suffix
    export_torchscript(model, path, batch=1, height=32, width=32)
    runner = TorchScriptRunner(path, device="cpu")
    image = sample_photo(32, 48, "coffee.png")
    with runner:
        out = deblur_image(runner, image, clamp=False)
        assert runner.input_shape == (1, 3, 32, 32)
    with TorchRunner(model) as reference:
        whole = deblur_image(reference, image, clamp=False)
    assert out.shape == image.shape
    # same weights; only the tile borders differ (measured: max 1.1e-4 in cols 0-7, 57.7 dB overall)
    np.testing.assert_allclose(out[:, :8], whole[:, :8], atol=1e-3)
    assert psnr_db(out, whole) > 45.0
