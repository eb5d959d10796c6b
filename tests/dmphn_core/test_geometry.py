import pytest
import torch

from dmphn_core.geometry import (
    HIERARCHY_NAMES,
    Geometry,
    PatchGrid,
    crop_to,
    merge_patches,
    pad_to_block,
    parse_levels,
    split_patches,
)


@pytest.mark.parametrize(
    ("levels", "layout", "block"),
    [(1, "design", (4, 4)), (2, "design", (4, 8)), (3, "design", (8, 8)), (4, "design", (8, 16)), (4, "authors", (16, 8))],
)
def test_size_block_follows_the_finest_grid(levels, layout, block):
    assert Geometry(levels, layout).size_block == block


def test_design_layout_patch_counts_are_1_2_4_8():
    geometry = Geometry(4)
    assert [geometry.grid(level).count for level in (1, 2, 3, 4)] == [1, 2, 4, 8]
    # level 4 is 2 rows x 4 cols and decodes on level 3's 2x2 grid
    assert geometry.grid(4) == PatchGrid(2, 4)
    assert geometry.decoder_grid(4) == PatchGrid(2, 2)
    assert geometry.decoder_grid(1) == PatchGrid(1, 1)
    assert geometry.levels_coarse_to_fine == (4, 3, 2, 1)


def test_split_is_row_major_and_merge_inverts_it():
    x = torch.arange(2 * 1 * 4 * 8, dtype=torch.float32).reshape(2, 1, 4, 8)
    grid = PatchGrid(2, 4)
    patches = split_patches(x, grid)
    assert patches.shape == (16, 1, 2, 2)
    # patch 1 of image 0 is row 0, column 1; patch 4 is row 1, column 0; image 1 starts at index 8
    torch.testing.assert_close(patches[1], x[0, :, 0:2, 2:4])
    torch.testing.assert_close(patches[4], x[0, :, 2:4, 0:2])
    torch.testing.assert_close(patches[8], x[1, :, 0:2, 0:2])
    torch.testing.assert_close(merge_patches(patches, grid), x)


@pytest.mark.parametrize("size", [(63, 128), (64, 120), (4, 16)])
def test_check_size_names_sizes_and_fix(size):
    with pytest.raises(ValueError) as info:
        Geometry(4).check_size(*size)
    message = str(info.value)
    assert f"{size[0]}x{size[1]}" in message and "multiple of 8" in message and "Pad to" in message
    # "crop to 0x16" is no fix: a crop is offered only when something would be left
    assert ("crop to" in message) == (size[0] >= 8 and size[1] >= 16)


@pytest.mark.parametrize("size", [(0, 16), (8, -16)])
def test_check_size_rejects_non_positive_sizes_with_their_own_message(size):
    with pytest.raises(ValueError, match="must be positive") as info:
        Geometry(4).check_size(*size)
    assert "crop to" not in str(info.value) and "multiple of" not in str(info.value)


def test_pad_to_block_then_crop_restores_the_image():
    x = torch.rand(1, 3, 427, 640)
    padded, size = pad_to_block(x, Geometry(4))
    assert padded.shape[-2:] == (432, 640)
    assert size == (427, 640)
    # reflect padding mirrors without repeating the edge row
    torch.testing.assert_close(padded[..., 427, :], x[..., 425, :])
    torch.testing.assert_close(crop_to(padded, size), x)


def test_pad_to_block_falls_back_to_replicate_for_tiny_images():
    x = torch.rand(1, 3, 3, 5)
    padded, _ = pad_to_block(x, Geometry(4))
    assert padded.shape[-2:] == (8, 16)
    torch.testing.assert_close(padded[..., -1, -1], x[..., -1, -1])


@pytest.mark.parametrize(("text", "levels"), [(4, 4), ("4", 4), ("1-2-4-8", 4), ("DMPHN-1-2-4", 3), ("1", 1), ("1-2", 2)])
def test_parse_levels_accepts_counts_and_paper_names(text, levels):
    assert parse_levels(text) == levels


def test_hierarchy_names_are_the_papers():
    assert HIERARCHY_NAMES == {1: "1", 2: "1-2", 3: "1-2-4", 4: "1-2-4-8"}
    for levels, name in HIERARCHY_NAMES.items():
        assert parse_levels(name) == parse_levels(f"DMPHN-{name}") == levels


@pytest.mark.parametrize("bad", ["5", "1-2-8", "0", "x"])
def test_parse_levels_rejects_unknown(bad):
    with pytest.raises(ValueError, match="unknown DMPHN hierarchy"):
        parse_levels(bad)


def test_unknown_layout_is_rejected():
    with pytest.raises(ValueError, match="unknown layout"):
        Geometry(2, "diagonal")
