"""Image files checked before decoding: the size in the header, truncated and corrupt PNG/JPEG (issue #27 items 3, 4)."""

import struct
import zlib

import cv2
import numpy as np
import pytest

from dmphn_core.errors import ImageError
from dmphn_core.imagecheck import DEFAULT_MAX_PIXELS, MAX_PIXELS_ENV, header_size, max_pixels
from dmphn_core.imageio import read_image_and_format


def _encoded(suffix: str, height: int = 37, width: int = 53) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    ok, data = cv2.imencode(suffix, pixels)
    assert ok
    return data.tobytes()


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose IHDR claims ``width x height`` (a decompression bomb's header)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda kind, body: struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".webp", ".tif"])
def test_header_size_of_every_format_we_read(suffix):
    assert header_size(_encoded(suffix, 37, 53)) == (53, 37)


def test_header_over_the_pixel_limit_is_refused_before_decoding(tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_claiming(70001, 90001))
    monkeypatch.setattr(cv2, "imdecode", lambda *a: pytest.fail("decoded a file over the limit"))
    with pytest.raises(ImageError, match=r"70001x90001 .*over the limit of 100,000,000.*--max-pixels"):
        read_image_and_format(path)


def test_the_pixel_limit_is_ours_and_overridable(tmp_path, monkeypatch):
    path = tmp_path / "small.png"
    path.write_bytes(_encoded(".png", 20, 30))
    assert max_pixels() == DEFAULT_MAX_PIXELS
    with pytest.raises(ImageError, match="30x20 .*over the limit of 599"):
        read_image_and_format(path, max_pixels=599)
    monkeypatch.setenv(MAX_PIXELS_ENV, "599")
    with pytest.raises(ImageError, match="over the limit of 599"):
        read_image_and_format(path)
    assert read_image_and_format(path, max_pixels=600)[0].shape == (20, 30, 3)


def test_an_opencv_exception_is_an_image_error(tmp_path):
    """Above our limit OpenCV's own (2^30 pixels) raises cv2.error: still this file's ImageError."""
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_claiming(100000, 100000))
    with pytest.raises(ImageError, match="cannot decode image .*bomb.png"):
        read_image_and_format(path, max_pixels=10**11)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9])
def test_a_truncated_file_is_an_error_not_a_grey_picture(tmp_path, suffix, keep):
    data = _encoded(suffix, 64, 96)
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ImageError, match="truncated"):
        read_image_and_format(path)


def test_a_png_with_a_damaged_chunk_is_corrupt(tmp_path):
    data = bytearray(_encoded(".png", 64, 96))
    data[len(data) // 2] ^= 0xFF
    path = tmp_path / "flipped.png"
    path.write_bytes(bytes(data))
    with pytest.raises(ImageError, match="corrupt PNG .*CRC"):
        read_image_and_format(path)


def test_whole_files_with_trailing_bytes_still_read(tmp_path):
    path = tmp_path / "trailer.jpg"
    path.write_bytes(_encoded(".jpg", 16, 16) + b"camera trailer after the end-of-image marker")
    assert read_image_and_format(path)[0].shape == (16, 16, 3)
