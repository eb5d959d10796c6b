import numpy as np
import pytest
import torch

from dmphn_core.data.gopro import DatasetError, PairDataset, StepBatchSampler, find_pairs
from dmphn_core.imageio import write_image


def _write_gopro_tree(root, sequences=("GOPR0001_11_00", "GOPR0002_11_01"), frames=3, size=(40, 48)):
    """A GoPro-shaped tree: root/{train,test}/<seq>/{blur,blur_gamma,sharp}/NNNNNN.png."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for sequence in sequences:
            for folder in ("blur", "blur_gamma", "sharp"):
                (root / split / sequence / folder).mkdir(parents=True)
                for k in range(frames):
                    write_image(root / split / sequence / folder / f"{k:06d}.png", rng.random((*size, 3), dtype=np.float32))
    return root


def test_pairs_match_by_name_in_each_sequence(tmp_path):
    root = _write_gopro_tree(tmp_path)
    pairs = find_pairs(root, "train", "blur")
    assert len(pairs) == 6
    for pair in pairs:
        assert pair.blurred.name == pair.sharp.name
        assert pair.blurred.parent.name == "blur" and pair.sharp.parent.name == "sharp"
        assert pair.blurred.parent.parent == pair.sharp.parent.parent
    assert {p.blurred.parent.name for p in find_pairs(root, "test", "blur_gamma")} == {"blur_gamma"}


@pytest.mark.parametrize("breakage, message", [
    ("missing_split", "no 'train' split"),
    ("missing_sharp", "missing folder"),
    ("unpaired", "unpaired file"),
    ("empty", "no sequence folders"),
])
def test_broken_layouts_are_reported_clearly(tmp_path, breakage, message):
    root = _write_gopro_tree(tmp_path)
    sequence = root / "train" / "GOPR0001_11_00"
    if breakage == "missing_split":
        import shutil
        shutil.rmtree(root / "train")
    elif breakage == "missing_sharp":
        import shutil
        shutil.rmtree(sequence / "sharp")
    elif breakage == "unpaired":
        (sequence / "blur_gamma" / "000001.png").unlink()
    elif breakage == "empty":
        import shutil
        shutil.rmtree(root / "train")
        (root / "train").mkdir()
    with pytest.raises(DatasetError, match=message):
        find_pairs(root, "train", "blur_gamma")


def test_unknown_blur_kind(tmp_path):
    with pytest.raises(DatasetError, match="unknown blur kind"):
        find_pairs(_write_gopro_tree(tmp_path), "train", "blurry")


def test_crops_are_aligned_deterministic_and_in_range(tmp_path):
    root = _write_gopro_tree(tmp_path)
    pairs = find_pairs(root, "train", "blur_gamma")
    # sharp == blurred file, so an aligned crop gives identical tensors
    same = [type(p)(p.sharp, p.sharp, p.sequence) for p in pairs]
    dataset = PairDataset(same, crop=16)
    a, b = dataset[(2, 123)]
    assert a.shape == (3, 16, 16) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert torch.equal(dataset[(2, 123)][0], a)  # same key, same crop
    assert not torch.equal(dataset[(2, 124)][0], a)
    assert 0.0 <= a.min() and a.max() <= 1.0
    full = PairDataset(pairs, crop=None)[0]
    assert full[0].shape == (3, 40, 48)


def test_crop_larger_than_image_is_an_error(tmp_path):
    pairs = find_pairs(_write_gopro_tree(tmp_path), "train", "blur_gamma")
    with pytest.raises(DatasetError, match="smaller than the 64x64 training crop"):
        PairDataset(pairs, crop=64)[(0, 1)]


def test_sampler_is_a_pure_function_of_step_and_splits_over_ranks():
    single = StepBatchSampler(10, 6, seed=3)
    resumed = StepBatchSampler(10, 6, seed=3, start_step=5)
    batches = iter(single)
    first_seven = [next(batches) for _ in range(7)]
    assert next(iter(resumed)) == first_seven[5]
    rank0 = StepBatchSampler(10, 6, seed=3, rank=0, world=2).batch_for_step(4)
    rank1 = StepBatchSampler(10, 6, seed=3, rank=1, world=2).batch_for_step(4)
    assert rank0 + rank1 == first_seven[4]
    # every item appears once per epoch
    stream = [key[0] for batch in first_seven[:5] for key in batch][:30]
    for epoch in range(3):
        assert sorted(stream[epoch * 10:(epoch + 1) * 10]) == list(range(10))
    with pytest.raises(Exception, match="does not split evenly"):
        StepBatchSampler(10, 5, world=2)
