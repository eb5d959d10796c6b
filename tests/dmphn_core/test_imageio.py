import cv2
import numpy as np
import pytest
import torch

from dmphn_core.errors import ImageError
from dmphn_core.imageio import (
    image_to_tensor,
    list_images,
    read_image,
    read_image_and_format,
    tensor_to_image,
    write_image,
)


def test_png_round_trip_is_exact_at_8_bit(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    image = pixels.astype(np.float32) / 255.0
    write_image(tmp_path / "a.png", image)
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), image)


def test_channels_are_rgb_not_bgr(tmp_path):
    bgr = np.zeros((4, 4, 3), np.uint8)
    bgr[..., 2] = 255  # red in OpenCV's BGR order
    cv2.imwrite(str(tmp_path / "red.png"), bgr)
    image = read_image(tmp_path / "red.png")
    assert image[0, 0].tolist() == [1.0, 0.0, 0.0]


def test_grey_becomes_equal_rgb_channels(tmp_path):
    grey = np.arange(30, dtype=np.uint8).reshape(5, 6) * 8
    cv2.imwrite(str(tmp_path / "grey.png"), grey)
    image = read_image(tmp_path / "grey.png")
    assert image.shape == (5, 6, 3)
    for channel in range(3):
        np.testing.assert_array_equal(image[..., channel], grey / np.float32(255))


def test_rgba_drops_alpha_and_keeps_colour_order(tmp_path):
    bgra = np.zeros((5, 6, 4), np.uint8)
    bgra[...] = (10, 20, 30, 40)  # OpenCV's order: blue, green, red, alpha
    bgra[0, 0] = (200, 100, 50, 0)  # fully transparent: its colour must survive all the same
    cv2.imwrite(str(tmp_path / "x.png"), bgra)
    image = read_image(tmp_path / "x.png")
    assert image.shape == (5, 6, 3)
    np.testing.assert_array_equal(image[1, 1] * 255, [30, 20, 10])
    np.testing.assert_array_equal(image[0, 0] * 255, [50, 100, 200])


def test_sixteen_bit_is_scaled(tmp_path):
    # A mid value: 65535 reads as 1.0 even where 16-bit is wrongly read as 8-bit (255/255),
    # 1000 reads as 1000/65535 only at 16 bits (8-bit reading gives 3/255, off by 0.004).
    pixels = np.full((3, 3, 3), 1000, np.uint16)
    pixels[0, 0] = (1000, 30000, 65535)  # BGR: also checks the channel order at 16 bits
    cv2.imwrite(str(tmp_path / "x.png"), pixels)
    image = read_image(tmp_path / "x.png")
    assert image.dtype == np.float32
    np.testing.assert_allclose(image[1, 1], [1000 / 65535] * 3, rtol=0, atol=1e-7)
    np.testing.assert_allclose(image[0, 0], [1.0, 30000 / 65535, 1000 / 65535], rtol=0, atol=1e-7)


def test_missing_and_corrupt_files_raise_image_error(tmp_path):
    with pytest.raises(ImageError, match="image not found"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "bad.png").write_bytes(b"not a png at all")
    with pytest.raises(ImageError, match="cannot decode"):
        read_image(tmp_path / "bad.png")


def test_write_refuses_nan_and_bad_shapes_and_keeps_old_file(tmp_path):
    target = tmp_path / "out.png"
    write_image(target, np.zeros((4, 4, 3), np.float32))
    before = target.read_bytes()
    with pytest.raises(ImageError, match="NaN"):
        write_image(target, np.full((4, 4, 3), np.nan, np.float32))
    with pytest.raises(ImageError, match=r"expected \(H, W, 3\)"):
        write_image(target, np.zeros((4, 4), np.float32))
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_tensor_conversions_and_listing(tmp_path):
    image = np.random.default_rng(1).random((6, 8, 3), dtype=np.float32)
    tensor = image_to_tensor(image)
    assert tensor.shape == (1, 3, 6, 8)
    np.testing.assert_array_equal(tensor_to_image(tensor), image)
    with pytest.raises(ValueError, match="single image"):
        tensor_to_image(torch.zeros(2, 3, 4, 4))
    for name in ("b.png", "a.jpg", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.png"]


@pytest.mark.parametrize(("raw", "channels", "bit_depth"), [
    (np.arange(30, dtype=np.uint8).reshape(5, 6), 1, 8),
    (np.arange(120, dtype=np.uint8).reshape(5, 6, 4), 4, 8),
    (np.arange(90, dtype=np.uint16).reshape(5, 6, 3) * 700, 3, 16),
])
def test_format_round_trip_keeps_grey_alpha_and_16_bit(tmp_path, raw, channels, bit_depth):
    cv2.imwrite(str(tmp_path / "in.png"), raw)
    image, fmt = read_image_and_format(tmp_path / "in.png")
    assert image.shape == (5, 6, 3) and (fmt.channels, fmt.bit_depth) == (channels, bit_depth)
    assert write_image(tmp_path / "out.png", image, like=fmt) == []
    back = cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(back, raw)  # an unchanged image comes back bit for bit


def test_suffix_that_cannot_keep_16_bit_says_so(tmp_path):
    cv2.imwrite(str(tmp_path / "in.png"), np.full((4, 4, 3), 40000, np.uint16))
    image, fmt = read_image_and_format(tmp_path / "in.png")
    notes = write_image(tmp_path / "out.jpg", image, like=fmt)
    assert notes == ["16-bit input written as 8-bit (.jpg has no 16-bit form)"]
    assert cv2.imread(str(tmp_path / "out.jpg"), cv2.IMREAD_UNCHANGED).dtype == np.uint8
