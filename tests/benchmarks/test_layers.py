"""dmphn-parity --layers: per-point comparison and the first point under the floor."""

from __future__ import annotations

import copy
import math

import numpy as np
import torch

from benchmarks.layers import compare_layers, conv_order, decoder_bounds, first_under, layers_markdown, point_floor
from runtimes.torch_eager import TorchRunner
from tests.conftest import random_model

H, W = 32, 64


def _x() -> np.ndarray:
    return np.random.default_rng(2).random((1, 3, H, W), dtype=np.float32)


def test_points_name_every_conv_and_each_levels_features_and_residual():
    model = random_model("1-2", seed=4)
    names = conv_order(model)
    bounds = decoder_bounds(names)
    assert set(bounds) == {1, 2} and all(names[first].startswith(f"decoders.{level - 1}.")
                                         for level, (first, _) in bounds.items())
    with TorchRunner(model) as same:
        rows = compare_layers(same, model, _x(), point_floor("fp32"))
    assert len(rows) == len(names) + 2  # + one features point per level
    assert [r["kind"] for r in rows].count("residual") == 2
    assert all(math.isinf(r["psnr_db"]) and r["rel_err"] == 0 for r in rows) and first_under(rows) is None


def test_first_point_under_the_floor_is_the_broken_convolution():
    model = random_model("1-2", seed=4)
    broken = copy.deepcopy(model)
    target = conv_order(model)[5]
    with torch.no_grad():
        broken.get_submodule(target).weight.mul_(1.05)
    with TorchRunner(broken) as candidate:
        rows = compare_layers(candidate, model, _x(), floor_db=60.0)
    first = first_under(rows)
    assert first is not None and first["point"] == target
    assert all(row["passed"] for row in rows[: rows.index(first)])
    table = layers_markdown([{"runner": "x", "input": "y", "status": "ok", "floor_db": 60.0,
                              "first_under": first["point"], "points": rows}])
    assert f"**{target}**" in table


def test_point_floor_defaults():
    assert point_floor("int8") == 40.0 and point_floor("fp32") == 80.0 and point_floor("int8", 30.0) == 30.0
