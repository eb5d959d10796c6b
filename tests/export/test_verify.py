import json

import numpy as np
import torch

from dmphn_core.artifact import INPUT_NAME, artifact_metadata, metadata_json
from export.verify import verification_inputs, verify_runner
from runtimes.base import Runner
from runtimes.compare import tolerance_for
from runtimes.torch_eager import TorchRunner
from tests.conftest import random_model


class NoisyRunner(Runner):
    """Wraps the eager model and adds a fixed offset: a stand-in for a broken artifact."""

    runtime = "noisy"

    def __init__(self, model, offset):
        super().__init__()
        self.inner, self.offset = TorchRunner(model), offset

    def _activate(self):
        self.inner.activate()

    def _infer(self, x):
        return self.inner.infer(x) + self.offset


def test_inputs_are_seeded_random_and_photos():
    (label_a, random_a), (label_b, photos) = verification_inputs(2, 32, 48)
    (_, random_again), _ = verification_inputs(2, 32, 48)
    assert label_a.startswith("random") and label_b == "photo"
    np.testing.assert_array_equal(random_a, random_again)
    assert photos.shape == (2, 3, 32, 48) and photos.dtype == np.float32
    assert not np.array_equal(photos[0], photos[1])  # different photos per batch item
    assert photos.std() > 0.05  # a real picture, not a flat fill


def test_matching_runner_passes_and_offset_runner_fails():
    model = random_model(2)
    good = verify_runner(TorchRunner(model), model, tolerance_for("fp32"), [(1, 32, 32), (2, 32, 64)])
    assert good.passed and len(good.cases) == 4
    bad = verify_runner(NoisyRunner(model, 1e-3), model, tolerance_for("fp32"), [(1, 32, 32)])
    assert not bad.passed
    assert bad.lines()[-1] == "verification FAILED"
    assert bad.to_dict()["passed"] is False and bad.cases[0]["max_abs"] > 9e-4


def test_verification_leaves_the_model_on_its_device_and_dtype():
    model = random_model(1)
    verify_runner(TorchRunner(model, precision="bf16"), model, tolerance_for("bf16"), [(1, 16, 16)])
    assert next(model.parameters()).dtype == torch.float32


def test_metadata_carries_names_block_and_shapes():
    model = random_model(4)
    meta = artifact_metadata(model.config, batch=2, height=64, width=128, dynamic_hw=True, tensorrt="10.x")
    assert meta["input"]["name"] == INPUT_NAME
    assert meta["size_block_hw"] == [8, 16]
    assert meta["input"]["shape"] == [2, 3, "height", "width"]
    assert meta["patches_per_level"] == [1, 2, 4, 8]
    assert meta["tensorrt"] == "10.x"
    assert json.loads(metadata_json(meta)) == meta
