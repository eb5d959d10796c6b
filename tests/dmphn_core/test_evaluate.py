import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dmphn_core.data.camera_shake import ShakeSettings, bundled_sources, synthesize
from dmphn_core.data.gopro import DatasetError, find_pairs
from dmphn_core.errors import DMPHNError
from dmphn_core.evaluate import evaluate_pairs, render_table, to_json, to_markdown
from dmphn_core.imageio import read_image, write_image
from dmphn_core.inference import Deblurrer
from dmphn_core.metrics import psnr, ssim
from runtimes.base import Runner
from runtimes.torch_eager import TorchRunner
from tests.conftest import random_model


def make_dataset(root: Path, photos: int = 2, pairs_per_photo: int = 2, size: tuple[int, int] = (64, 64)) -> Path:
    """A tiny GoPro-layout test split: ``photos`` sequences of ``pairs_per_photo`` pairs."""
    synthesize(bundled_sources("test")[:photos], root, "test", pairs_per_photo=pairs_per_photo, size=size,
               settings=ShakeSettings(max_shift=6.0), seed=7)
    return root


class IdentityRunner(Runner):
    """Model-free runner that returns its input: deblurring that changes nothing."""

    runtime = "identity"

    def _activate(self) -> None:
        pass

    def _infer(self, x: torch.Tensor) -> torch.Tensor:
        return x.clone()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("gopro"))


def test_random_model_scores_are_consistent(dataset):
    pairs = find_pairs(dataset, "test")
    with TorchRunner(random_model(1)) as runner:
        result = evaluate_pairs(runner, pairs, dataset={"root": str(dataset), "split": "test"})
    result = json.loads(to_json(result))
    images, summary = result["images"], result["summary"]
    assert len(images) == summary["images"] == 4
    assert [image["name"] for image in images] == [pair.name for pair in pairs]
    for key in ("psnr_blurred", "ssim_blurred", "psnr_deblurred", "ssim_deblurred", "gain_db"):
        assert summary[key] == pytest.approx(np.mean([image[key] for image in images]))
    for image, pair in zip(images, pairs):
        blurred, sharp = read_image(pair.blurred), read_image(pair.sharp)
        assert image["psnr_blurred"] == pytest.approx(psnr(blurred, sharp), abs=1e-9)
        assert image["ssim_blurred"] == pytest.approx(ssim(blurred, sharp), abs=1e-9)
        assert image["gain_db"] == pytest.approx(image["psnr_deblurred"] - image["psnr_blurred"])
        assert (image["height"], image["width"]) == (64, 64)
    # untrained weights do change the image, so the deblurred scores are not the input's
    assert all(abs(image["gain_db"]) > 0.01 for image in images)
    assert summary["model"] == "DMPHN-1" and summary["runner"]["runtime"] == "torch"
    assert summary["dataset"] == {"root": str(dataset), "split": "test"}


def test_identity_runner_gains_nothing(dataset):
    with IdentityRunner() as runner:
        result = evaluate_pairs(runner, find_pairs(dataset, "test"), limit=3)
    assert result["summary"]["images"] == 3
    assert result["summary"]["gain_db"] == 0.0 and result["summary"]["ssim_gain"] == 0.0
    for image in result["images"]:
        assert image["psnr_deblurred"] == image["psnr_blurred"]
    assert result["summary"]["model"] is None  # the runner names no model


def test_tiled_evaluation_and_reports(dataset):
    with IdentityRunner() as runner:
        deblurrer = Deblurrer(runner, tile=32, overlap=8)
        result = evaluate_pairs(deblurrer, find_pairs(dataset, "test"))
    assert result["summary"]["gain_db"] == pytest.approx(0.0, abs=1e-6)  # blending an identity is exact
    assert result["summary"]["tile"] == 32
    markdown = to_markdown(result)
    table_rows = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert len(table_rows) == 1 + 4 + 1  # header, images, mean
    assert "mean of 4" in markdown
    assert render_table(result).row_count == 5
    assert render_table(result, max_rows=2).row_count == 1  # many images: summary row only


def test_bad_limits_and_empty_input(dataset):
    with IdentityRunner() as runner:
        with pytest.raises(DMPHNError, match="limit"):
            evaluate_pairs(runner, find_pairs(dataset, "test"), limit=0)
        with pytest.raises(DMPHNError, match="no image pairs"):
            evaluate_pairs(runner, [])


def test_pair_of_different_sizes_is_a_dataset_error(tmp_path):
    root = make_dataset(tmp_path, photos=1, pairs_per_photo=1)
    pair = find_pairs(root, "test")[0]
    write_image(pair.sharp, np.zeros((32, 64, 3), np.float32))
    with IdentityRunner() as runner, pytest.raises(DatasetError, match="sizes differ"):
        evaluate_pairs(runner, [pair])


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # scikit-image's PSNR of identical images
def test_identical_images_give_json_null_not_infinity(tmp_path):
    root = make_dataset(tmp_path, photos=1, pairs_per_photo=1)
    pair = find_pairs(root, "test")[0]
    write_image(pair.blurred, read_image(pair.sharp))
    with IdentityRunner() as runner:
        result = evaluate_pairs(runner, [pair])
    parsed = json.loads(to_json(result))
    assert parsed["images"][0]["psnr_blurred"] is None and parsed["images"][0]["ssim_blurred"] == pytest.approx(1.0)
