import json

import numpy as np
from typer.testing import CliRunner

from cli.synth import app
from dmphn_core.data.gopro import find_pairs
from dmphn_core.imageio import read_image
from dmphn_core.samples import HELD_OUT_PHOTOS, TRAIN_PHOTOS

cli = CliRunner()


def _stems(names):
    return sorted(name.rsplit(".", 1)[0] for name in names)


def test_default_splits_keep_test_photos_apart_and_val_views_new(tmp_path):
    result = cli.invoke(app, [str(tmp_path), "--pairs-per-photo", "1", "--val-pairs-per-photo", "1",
                              "--test-pairs-per-photo", "1", "--size", "32x32", "--max-shift", "4"])
    assert result.exit_code == 0, result.output
    sequences = {split: sorted(p.name for p in (tmp_path / split).iterdir()) for split in ("train", "val", "test")}
    assert sequences["train"] == sequences["val"] == _stems(TRAIN_PHOTOS)
    assert sequences["test"] == _stems(HELD_OUT_PHOTOS)
    # val cuts other views of the same photos: no val image repeats its training twin
    for train_pair, val_pair in zip(find_pairs(tmp_path, "train"), find_pairs(tmp_path, "val")):
        assert not np.array_equal(read_image(train_pair.sharp), read_image(val_pair.sharp))
    provenance = json.loads((tmp_path / "synth.json").read_text())
    assert provenance["val"]["pairs"] == len(TRAIN_PHOTOS) and provenance["test"]["pairs"] == len(HELD_OUT_PHOTOS)


def test_adding_val_later_leaves_train_and_test_unchanged(tmp_path):
    common = ["--pairs-per-photo", "1", "--test-pairs-per-photo", "1", "--size", "32x32", "--max-shift", "4"]
    assert cli.invoke(app, [str(tmp_path / "a"), "--split", "train", "--split", "test", *common]).exit_code == 0
    assert cli.invoke(app, [str(tmp_path / "b"), *common]).exit_code == 0
    for split in ("train", "test"):
        for a, b in zip(find_pairs(tmp_path / "a", split), find_pairs(tmp_path / "b", split), strict=True):
            np.testing.assert_array_equal(read_image(a.blurred), read_image(b.blurred))


def test_unknown_split_is_one_line_error(tmp_path):
    result = cli.invoke(app, [str(tmp_path), "--split", "validation"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: unknown split 'validation'; use one of train, val, test"


def test_min_contrast_flattens_train_and_val_but_never_test(tmp_path):
    common = ["--pairs-per-photo", "1", "--test-pairs-per-photo", "1", "--size", "32x32", "--max-shift", "4"]
    assert cli.invoke(app, [str(tmp_path / "plain"), *common]).exit_code == 0
    assert cli.invoke(app, [str(tmp_path / "flat"), *common, "--min-contrast", "0.3"]).exit_code == 0
    for a, b in zip(find_pairs(tmp_path / "plain", "test"), find_pairs(tmp_path / "flat", "test"), strict=True):
        np.testing.assert_array_equal(read_image(a.blurred), read_image(b.blurred))
    flattened = [read_image(b.sharp).std() < read_image(a.sharp).std() - 1e-3
                 for a, b in zip(find_pairs(tmp_path / "plain", "train"), find_pairs(tmp_path / "flat", "train"))]
    assert sum(flattened) >= len(flattened) // 2
    provenance = json.loads((tmp_path / "flat" / "synth.json").read_text())
    assert provenance["train"]["min_contrast"] == provenance["val"]["min_contrast"] == 0.3
    assert provenance["test"]["min_contrast"] == 1.0


def test_bad_min_contrast_is_one_line_error_and_writes_nothing(tmp_path):
    result = cli.invoke(app, [str(tmp_path / "out"), "--min-contrast", "1.5"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: min contrast must be in (0, 1], got 1.5"
    assert not (tmp_path / "out").exists()
