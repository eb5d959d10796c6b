"""The DMPHN authors' published GoPro weights, test frames and outputs: where, what hash, how to fetch.

Everything is pinned to one commit of the authors' public repository
(``HongguangZhang/DMPHN-cvpr19-master``). The package ships only the sha256 of each file
at that commit (``assets/authors_manifest.sha256``, ``sha256sum -c`` format, repository-relative
paths), never the files: the repository has no licence, so users download them.

Downloads land under the cache folder with the repository's relative paths, through a
temporary file that is renamed only after its sha256 matched, so the cache never holds a
partial or unverified file. The imported checkpoint (``import_authors_checkpoint``) is kept
there too, which is what ``--model authors`` finds.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .checkpoint import Checkpoint, import_authors_checkpoint, save_checkpoint
from .errors import DMPHNError
from .download import (  # noqa: F401 - re-exported: the authors' fetch is where callers look
    DEFAULT_DEADLINE_S, DEFAULT_MIN_RATE, DEFAULT_TIMEOUT_S, DownloadLimits, base_url_of, download_verified, fetch_files,
)
from .fileio import file_sha256, user_cache_dir

REPOSITORY = "HongguangZhang/DMPHN-cvpr19-master"
#: The commit whose files the manifest hashes (2023-01-28); see the reference README.
COMMIT = "9fff261daca8beb0cbaaa0b64df4239b5a05dd17"
DEFAULT_BASE_URL = f"https://raw.githubusercontent.com/{REPOSITORY}/{COMMIT}"
MANIFEST = Path(__file__).parent / "assets" / "authors_manifest.sha256"

#: Variant name -> the repository folder of its per-level files.
VARIANTS = {"1-2-4-8": "DMPHN_1_2_4_8", "1-2-4": "DMPHN_1_2_4"}
DEFAULT_VARIANT = "1-2-4-8"

#: Where tests and reports find a local copy of the reference files (same relative paths).
REFERENCE_DIR_ENV = "DMPHN_REFERENCE_DIR"

#: A faithful port reproduces the published (8-bit, truncated) outputs above this PSNR.
#: Rounding instead of truncating alone costs ~0.5 LSB on average, i.e. ~51-53 dB.
MIN_PSNR_VS_PUBLISHED_DB = 50.0

_MANIFEST_LINE = re.compile(r"^([0-9a-f]{64})\s+\*?(\S.*)$")


# -- what the manifest says -------------------------------------------------------------


def read_manifest(path: str | os.PathLike | None = None) -> dict[str, str]:
    """``{relative path: sha256}`` from a ``sha256sum`` file (the shipped one by default)."""
    path = Path(path or MANIFEST)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise DMPHNError(f"cannot read the authors' manifest {path}: {exc.strerror or exc}") from exc
    manifest = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        match = _MANIFEST_LINE.match(line.strip())
        if not match:
            raise DMPHNError(f"{path}:{number}: not a sha256sum line: {line.strip()[:60]!r}")
        manifest[match.group(2)] = match.group(1)
    return manifest


def check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise DMPHNError(f"unknown authors' variant {variant!r}; use one of {', '.join(VARIANTS)}")
    return variant


def weight_files(variant: str, manifest: dict[str, str] | None = None) -> dict[str, str]:
    """``{relative path: sha256}`` of one variant's per-level ``.pkl`` files."""
    prefix = f"checkpoints/{VARIANTS[check_variant(variant)]}/"
    manifest = read_manifest() if manifest is None else manifest
    files = {path: digest for path, digest in manifest.items() if path.startswith(prefix)}
    if not files:
        raise DMPHNError(f"the authors' manifest lists no files for DMPHN-{variant}")
    return files


def frame_files(manifest: dict[str, str] | None = None) -> dict[str, str]:
    """``{relative path: sha256}`` of their blurred test frames and both variants' published outputs."""
    manifest = read_manifest() if manifest is None else manifest
    return {path: digest for path, digest in manifest.items() if path.startswith(("test_samples/", "test_results/"))}


def published_outputs_folder(variant: str) -> str:
    """Relative folder of what the authors' test script wrote for ``variant``."""
    return f"test_results/{VARIANTS[check_variant(variant)]}_test_res"


def weights_label(variant: str) -> str:
    """How reports name these weights, e.g. ``authors DMPHN-1-2-4-8 GoPro @ HongguangZhang/…@9fff261``."""
    return f"authors DMPHN-{check_variant(variant)} GoPro @ {REPOSITORY}@{COMMIT[:7]}"


def authors_record(variant: str, source: str) -> dict[str, Any]:
    """The ``training`` record of an imported authors' checkpoint: what it is and where it came from."""
    return {
        "authors": {"repository": REPOSITORY, "commit": COMMIT, "variant": variant, "label": weights_label(variant)},
        "imported_from": source,
    }


def identify_variant(folder: str | os.PathLike) -> str | None:
    """The variant whose pinned files ``folder`` holds byte for byte (None when any differs or is missing)."""
    folder = Path(folder)
    manifest = read_manifest()
    for variant in VARIANTS:
        files = weight_files(variant, manifest)
        if all((folder / Path(p).name).is_file() and file_sha256(folder / Path(p).name) == d for p, d in files.items()):
            return variant
    return None


# -- comparing with their files --------------------------------------------------------


def compare_with_published(output: np.ndarray, published: np.ndarray) -> dict[str, float]:
    """How an output reproduces one published file.

    ``output``: (H, W, 3) float in [0, 1] (not yet quantised); ``published``: (H, W, 3) uint8
    as read from their PNG. Returns PSNR (dB) and mean |Δ| (8-bit steps) of the output rounded to
    8 bits as ``dmphn-deblur`` writes it, and, with their ``save_image`` emulated
    (``mul(255).clamp(0, 255).byte()``: truncation, in float32), the share of identical values
    and the largest difference.
    """
    if output.shape != published.shape:
        raise DMPHNError(f"output {output.shape} and published {published.shape} differ in shape")
    output = np.asarray(output, dtype=np.float32)
    theirs = published.astype(np.int16)
    rounded = (np.clip(output, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).astype(np.int16)
    truncated = np.clip(output * np.float32(255), 0, 255).astype(np.uint8).astype(np.int16)
    mse = float(np.mean((rounded - theirs).astype(np.float64) ** 2))
    return {
        "psnr_db": math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse),
        "mean_abs_lsb": float(np.mean(np.abs(rounded - theirs))),
        "mean_signed_lsb": float(np.mean(rounded - theirs)),
        "identical_truncated": float(np.mean(truncated == theirs)),
        "max_abs_truncated_lsb": int(np.max(np.abs(truncated - theirs))),
    }


# -- local folders ----------------------------------------------------------------------


def mirror_dir(cache: str | os.PathLike | None = None) -> Path:
    """Where downloads go: the repository's relative paths under ``cache/authors/COMMIT``."""
    return Path(cache or user_cache_dir()) / "authors" / COMMIT


def cached_checkpoint_path(variant: str = DEFAULT_VARIANT, cache: str | os.PathLike | None = None) -> Path:
    return mirror_dir(cache) / f"dmphn_{VARIANTS[check_variant(variant)].removeprefix('DMPHN_')}.pt"


def cached_authors_checkpoint(variant: str = DEFAULT_VARIANT, cache: str | os.PathLike | None = None) -> Path:
    """The checkpoint ``fetch-authors`` left in the cache, or a DMPHNError saying how to get it."""
    path = cached_checkpoint_path(variant, cache)
    if path.is_file():
        return path
    option = "" if variant == DEFAULT_VARIANT else f" --variant {variant}"
    cache_option = "" if cache is None else f" --cache {cache}"
    raise DMPHNError(
        f"the authors' DMPHN-{variant} weights are not in the cache ({path}); download them once with "
        f"`dmphn-ckpt fetch-authors{option}{cache_option}`"
    )


#: ``--model`` names that mean "the authors' weights from the cache".
MODEL_ALIASES = {"authors": DEFAULT_VARIANT, **{f"authors-{variant}": variant for variant in VARIANTS}}


def resolve_model_alias(model: str | os.PathLike | None, cache: str | os.PathLike | None = None) -> Path | None:
    """``authors`` / ``authors-1-2-4`` -> the cached checkpoint in ``cache`` (default the user cache;
    DMPHNError saying how to fetch it there when absent); anything else -> itself as a Path. A real
    file of that name wins over the alias."""
    if model is None:
        return None
    name = str(model)
    if name in MODEL_ALIASES and not Path(name).exists():
        return cached_authors_checkpoint(MODEL_ALIASES[name], cache)
    return Path(model)


def reference_dir(repo_root: str | os.PathLike | None = None) -> Path | None:
    """A local copy of the reference files: ``$DMPHN_REFERENCE_DIR``, else ``../shared/reference/dmphn-authors``
    beside ``repo_root``; None when neither is a folder."""
    candidates = []
    if os.environ.get(REFERENCE_DIR_ENV):
        candidates.append(Path(os.environ[REFERENCE_DIR_ENV]))
    if repo_root is not None:
        candidates.append(Path(repo_root).resolve().parent / "shared" / "reference" / "dmphn-authors")
    return next((c for c in candidates if c.is_dir()), None)


def fetch_authors(
    variant: str = DEFAULT_VARIANT,
    output: str | os.PathLike | None = None,
    *,
    base_url: str = DEFAULT_BASE_URL,
    cache: str | os.PathLike | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    limits: DownloadLimits | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> Checkpoint:
    """Download (or find in the cache) the verified per-level files of ``variant``, import them, and
    write the checkpoint into the cache (``--model authors`` uses it) and to ``output`` if given.

    Only the weights: frames are a separate step (:func:`fetch_frames`) and never cost them."""
    check_variant(variant)
    if output is not None and not Path(output).resolve().parent.is_dir():
        raise DMPHNError(f"cannot write {output}: folder {Path(output).parent} does not exist")
    root = mirror_dir(cache)
    limits = limits or DownloadLimits(timeout=timeout)  # one deadline for the whole fetch
    fetch_files(weight_files(variant), base_url, root, limits=limits, progress=progress, log=log)
    folder = root / "checkpoints" / VARIANTS[variant]
    checkpoint = import_authors_checkpoint(folder, layout="authors")
    checkpoint.training = authors_record(variant, f"{base_url_of(base_url)}/checkpoints/{VARIANTS[variant]}")
    model = checkpoint.build_model()
    save_checkpoint(cached_checkpoint_path(variant, cache), model, training=checkpoint.training)
    if output is not None:
        save_checkpoint(output, model, training=checkpoint.training)
    return checkpoint


def fetch_frames(
    destination: str | os.PathLike,
    *,
    base_url: str = DEFAULT_BASE_URL,
    only: list[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    limits: DownloadLimits | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> tuple[list[Path], dict[str, str]]:
    """Their test frames and both sets of published outputs (or the relative paths ``only``) under
    ``destination``, past any missing one: ``(paths there and verified, {relative path: why not})``."""
    files = frame_files()
    if only is not None:
        unknown = sorted(set(only) - set(files))
        if unknown:
            raise DMPHNError(f"not one of the authors' frame files: {', '.join(unknown)}")
        files = {relative: files[relative] for relative in only}
    missing: dict[str, str] = {}
    paths = fetch_files(files, base_url, destination, timeout=timeout, limits=limits, progress=progress, log=log,
                        missing=missing)
    return paths, missing
