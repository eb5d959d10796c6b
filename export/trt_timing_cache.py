"""TensorRT timing caches on disk: read (when trusted), attached to a builder config, written back.

A timing cache holds the measured speed of each tactic TensorRT tried, so a second build of
the same layers (the same engine in another process, another batch) skips most of the timing:
the artifact caches keep one beside their engines (:func:`cache_options`). Like every file
this toolkit trusts from disk, a cache is hashed: ``<cache>.json`` records its sha256 (and
the TensorRT and GPU that made it), and a cache whose record is missing or disagrees is not
read. TensorRT itself then refuses a readable cache from another TensorRT (``None`` from
``create_timing_cache``) or another GPU (``False`` from ``set_timing_cache``); such a cache is
replaced by an empty one, never used with ``ignore_mismatch``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from dmphn_core.errors import DMPHNError
from dmphn_core.fileio import write_bytes_atomic, write_text_atomic

#: The file the artifact caches keep beside their engines (one per folder: tactics do not depend on the weights).
CACHE_FILE_NAME = "tensorrt.timing-cache"


def cache_options(folder: Path) -> dict[str, Any]:
    """Build options an artifact cache passes for engines it keeps in ``folder``."""
    return {"timing_cache": Path(folder) / CACHE_FILE_NAME}


def record_path(cache_file: Path) -> Path:
    return cache_file.with_name(cache_file.name + ".json")


def _trusted_bytes(cache_file: Path) -> tuple[bytes | None, str | None]:
    """(content, None) when ``cache_file`` matches its record; (None, why not) otherwise."""
    blob = cache_file.read_bytes()
    try:
        recorded = json.loads(record_path(cache_file).read_text())["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return None, f"it has no readable record {record_path(cache_file).name}"
    if hashlib.sha256(blob).hexdigest() != recorded:
        return None, "its content does not match the sha256 in its record"
    return blob, None


def attach_timing_cache(trt, config, cache_file: Path | None) -> tuple[Any, bool, str | None]:
    """Give ``config`` a timing cache read from ``cache_file`` (or a new one).

    Returns (cache, reused, note on what was ignored or None). The caller keeps ``cache``
    and serializes it after the build (:func:`save_timing_cache`) while the config is alive.
    """
    if cache_file is None:
        return None, False, None
    note = None
    if cache_file.is_file():
        blob, distrust = _trusted_bytes(cache_file)
        cache = config.create_timing_cache(blob) if blob is not None else None
        if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
            return cache, True, None
        why = distrust or ("unreadable (corrupt, or from another TensorRT version)" if cache is None
                           else "made on another GPU")
        note = f"timing cache {cache_file} ignored: {why}; starting an empty one"
    cache = config.create_timing_cache(b"")
    if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
        raise DMPHNError("TensorRT could not create an empty timing cache")
    return cache, False, note


def save_timing_cache(cache, cache_file: Path, made_by: dict[str, Any]) -> None:
    """Write ``cache`` (the object attached before the build, now holding its timings) and its record."""
    serialized = cache.serialize()
    if serialized is None:
        raise DMPHNError("TensorRT could not serialize the timing cache")
    blob = bytes(serialized)
    write_bytes_atomic(cache_file, blob)
    write_text_atomic(record_path(cache_file), json.dumps({"sha256": hashlib.sha256(blob).hexdigest(), **made_by},
                                                          indent=2, sort_keys=True))
