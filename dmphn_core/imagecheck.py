"""Checks on an image file before it is decoded: its size from the header, and whether it is whole.

OpenCV decodes whatever it can: a truncated JPEG comes back with its missing part grey (libjpeg
only warns "Premature end of JPEG file"), and a header that claims 100000 x 100000 pixels is
refused only above OpenCV's own limit (2^30 pixels), with an exception of its own. Here the
toolkit sets its limit (:func:`max_pixels`: ``$DMPHN_MAX_PIXELS``, default
:data:`DEFAULT_MAX_PIXELS`; ``dmphn-deblur --max-pixels``), reads the size from the header of
PNG, JPEG, BMP, WebP and TIFF files without decoding them, and refuses truncated or corrupt PNG and
JPEG files (a PNG chunk that is cut off or fails its CRC, no IEND; a JPEG with no end-of-image
marker after its image data).
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

from .errors import ImageError

#: Environment variable overriding :data:`DEFAULT_MAX_PIXELS`.
MAX_PIXELS_ENV = "DMPHN_MAX_PIXELS"
#: Largest image (width x height) read by default: 100 megapixels, above any camera frame the
#: model is meant for (8K is 33 MP) and far below what would exhaust memory in float32 (1.2 GB).
DEFAULT_MAX_PIXELS = 100_000_000

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def max_pixels(override: int | None = None) -> int:
    """The pixel limit in force: ``override``, else ``$DMPHN_MAX_PIXELS``, else the default."""
    if override is not None:
        value = override
    else:
        raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
        try:
            value = int(raw) if raw else DEFAULT_MAX_PIXELS
        except ValueError:
            raise ImageError(f"${MAX_PIXELS_ENV}={raw!r} is not a whole number of pixels") from None
    if value < 1:
        raise ImageError(f"the pixel limit must be at least 1, got {value}")
    return value


def header_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from the header of a PNG, JPEG, BMP, WebP or TIFF file; None when unknown."""
    try:
        if data.startswith(_PNG_SIGNATURE) and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        if data.startswith(b"\xff\xd8"):
            return _jpeg_size(data)
        if data.startswith(b"BM"):
            width, height = struct.unpack("<ii", data[18:26])
            return abs(width), abs(height)
        if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
            return _webp_size(data)
        if data[:4] in (b"II*\x00", b"MM\x00*"):
            return _tiff_size(data)
    except struct.error:  # a header cut short: the decoder says what is wrong
        return None
    return None


def _jpeg_segments(data: bytes):
    """``(marker, offset of its payload, payload length)`` of each JPEG segment up to the first SOS."""
    offset = 2
    while offset + 4 <= len(data):
        if data[offset] != 0xFF:
            return
        marker = data[offset + 1]
        if marker == 0xFF:  # fill byte
            offset += 1
            continue
        length = struct.unpack(">H", data[offset + 2:offset + 4])[0]
        yield marker, offset + 4, length - 2
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            return
        offset += 2 + length


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    for marker, start, _ in _jpeg_segments(data):
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start-of-frame
            height, width = struct.unpack(">HH", data[start + 1:start + 5])
            return width, height
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    order = "<" if data[:2] == b"II" else ">"
    ifd = struct.unpack(order + "I", data[4:8])[0]
    count = struct.unpack(order + "H", data[ifd:ifd + 2])[0]
    found: dict[int, int] = {}
    for entry in range(count):
        tag, kind, _, value = struct.unpack(order + "HHI4s", data[ifd + 2 + 12 * entry:ifd + 14 + 12 * entry])
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT or LONG
            found[tag] = struct.unpack(order + ("H" if kind == 3 else "I"), value[:2 if kind == 3 else 4])[0]
    return (found[256], found[257]) if len(found) == 2 else None


def png_problem(data: bytes) -> str | None:
    """Why a PNG is not whole (a chunk cut off or failing its CRC, no IEND), or None."""
    offset = len(_PNG_SIGNATURE)
    while offset + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        end = offset + 12 + length
        if end > len(data):
            return f"truncated PNG (its {kind.decode('latin-1')} chunk is cut off)"
        crc = struct.unpack(">I", data[end - 4:end])[0]
        if zlib.crc32(data[offset + 4:end - 4]) != crc:
            return f"corrupt PNG (its {kind.decode('latin-1')} chunk fails its CRC check)"
        if kind == b"IEND":
            return None
        offset = end
    return "truncated PNG (no IEND chunk: the file ends early)"


def jpeg_problem(data: bytes) -> str | None:
    """Why a JPEG is not whole (no end-of-image marker after the image data), or None."""
    scan = next((start for marker, start, _ in _jpeg_segments(data) if marker == 0xDA), None)
    if scan is None:
        return "truncated or corrupt JPEG (no image data)"
    # entropy-coded data never holds FF D9 (FF bytes are stuffed with 00); EXIF thumbnails were skipped
    if data.find(b"\xff\xd9", scan) < 0:
        return "truncated JPEG (no end-of-image marker: the file ends early)"
    return None


def check_image_file(path: str | os.PathLike, limit: int | None = None) -> bytes:
    """The file's bytes, once its header is within the pixel limit and it is not a truncated or
    corrupt PNG/JPEG (else ImageError). The caller decodes these bytes: the file is read once."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(f"cannot read image {path}: {exc.strerror or exc}") from None
    check_pixel_count(path, header_size(data), limit)
    problem = png_problem(data) if data.startswith(_PNG_SIGNATURE) else (
        jpeg_problem(data) if data.startswith(b"\xff\xd8") else None)
    if problem:
        raise ImageError(f"{path}: {problem}")
    return data


def check_pixel_count(path: str | os.PathLike, size: tuple[int, int] | None, limit: int | None = None) -> None:
    """Raise ImageError when ``size`` (width, height) is over the pixel limit."""
    if size is None:
        return
    width, height = size
    allowed = max_pixels(limit)
    if width * height > allowed:
        raise ImageError(
            f"{path}: {width}x{height} (WxH) is {width * height:,} pixels, over the limit of {allowed:,} "
            f"(raise it with --max-pixels or ${MAX_PIXELS_ENV})"
        )


__all__ = ["DEFAULT_MAX_PIXELS", "MAX_PIXELS_ENV", "check_image_file", "check_pixel_count", "header_size",
           "jpeg_problem", "max_pixels", "png_problem"]
