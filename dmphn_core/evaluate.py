"""Score a model on GoPro-layout pairs: PSNR/SSIM of its output vs sharp, next to the blurred input's.

The blurred input's own scores are the baseline: ``gain_db`` is how many dB the model adds
(mean over images of ``psnr_deblurred - psnr_blurred``). Metrics are
:func:`dmphn_core.metrics.psnr` / :func:`~dmphn_core.metrics.ssim` on the full frames
(outputs clipped to [0, 1]), as in the usual GoPro tables.

The result is one JSON-able dict, ``{"summary": {...}, "images": [...]}``, which
:func:`render_table` and :func:`to_markdown` present.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from rich.table import Table

from .data.gopro import DatasetError, ImagePair
from .errors import DMPHNError
from .fileio import strict_json, write_text_atomic
from .imageio import read_image
from .inference import DEFAULT_OVERLAP, Deblurrer, ImageRunner
from .metrics import psnr, ssim

#: Above this many images the console table shows the summary only (the JSON has them all).
TABLE_MAX_ROWS = 40


@dataclass(frozen=True)
class PairScore:
    """Scores of one pair; PSNR in dB, SSIM in [0, 1], ``seconds`` = deblur time (no file I/O)."""

    name: str
    height: int
    width: int
    psnr_blurred: float
    ssim_blurred: float
    psnr_deblurred: float
    ssim_deblurred: float
    seconds: float

    @property
    def gain_db(self) -> float:
        return self.psnr_deblurred - self.psnr_blurred

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "gain_db": self.gain_db}


def score_pair(deblurrer: Deblurrer, pair: ImagePair) -> PairScore:
    """Read one pair, deblur the blurred image, score both against the sharp one."""
    blurred, sharp = read_image(pair.blurred), read_image(pair.sharp)
    if blurred.shape != sharp.shape:
        raise DatasetError(f"{pair.name}: blurred {blurred.shape[:2]} and sharp {sharp.shape[:2]} sizes differ")
    begin = time.perf_counter()
    deblurred = deblurrer.deblur(blurred, clamp=True)
    seconds = time.perf_counter() - begin
    return PairScore(
        name=pair.name, height=blurred.shape[0], width=blurred.shape[1],
        psnr_blurred=psnr(blurred, sharp), ssim_blurred=ssim(blurred, sharp),
        psnr_deblurred=psnr(deblurred, sharp), ssim_deblurred=ssim(deblurred, sharp),
        seconds=seconds,
    )


def summarize(scores: Sequence[PairScore]) -> dict[str, Any]:
    """Means over images (PSNR averaged in dB, as published tables do)."""
    if not scores:
        raise DMPHNError("no images were evaluated")

    def mean(values) -> float:
        return float(np.mean(list(values)))

    return {
        "images": len(scores),
        "psnr_blurred": mean(s.psnr_blurred for s in scores),
        "ssim_blurred": mean(s.ssim_blurred for s in scores),
        "psnr_deblurred": mean(s.psnr_deblurred for s in scores),
        "ssim_deblurred": mean(s.ssim_deblurred for s in scores),
        "gain_db": mean(s.gain_db for s in scores),
        "ssim_gain": mean(s.ssim_deblurred - s.ssim_blurred for s in scores),
        "seconds_per_image": mean(s.seconds for s in scores),
    }


def evaluate_pairs(
    runner: ImageRunner | Deblurrer,
    pairs: Sequence[ImagePair],
    *,
    tile: int | None = None,
    overlap: int = DEFAULT_OVERLAP,
    limit: int | None = None,
    dataset: dict[str, Any] | None = None,
    on_image: Callable[[PairScore], None] | None = None,
) -> dict[str, Any]:
    """Deblur and score ``pairs`` (the first ``limit``) -> ``{"summary": {...}, "images": [...]}``.

    ``runner``: a runner (:class:`dmphn_core.inference.ImageRunner`, activated here if needed) or a ready
    :class:`~dmphn_core.inference.Deblurrer`. ``dataset`` is copied into the summary (root,
    split, blur kind); ``on_image`` is called after each image (progress).
    """
    if limit is not None:
        if limit < 1:
            raise DMPHNError(f"limit must be at least 1, got {limit}")
        pairs = pairs[:limit]
    if not pairs:
        raise DMPHNError("no image pairs to evaluate")
    deblurrer = runner if isinstance(runner, Deblurrer) else Deblurrer(runner, tile=tile, overlap=overlap)
    scores = []
    for pair in pairs:
        score = score_pair(deblurrer, pair)
        scores.append(score)
        if on_image is not None:
            on_image(score)
    active = deblurrer.runner
    summary = summarize(scores)
    summary.update(
        model=active.model_config.name if active.model_config is not None else None,
        runner=active.describe(),
        tile=tile if not isinstance(runner, Deblurrer) else runner.tile,
        overlap=overlap if not isinstance(runner, Deblurrer) else runner.overlap,
        dataset=dict(dataset or {}),
    )
    return {"summary": summary, "images": [score.to_dict() for score in scores]}


# -- presentation -----------------------------------------------------------------------


def to_json(result: dict[str, Any]) -> str:
    return strict_json(result, indent=2) + "\n"


def write_json(result: dict[str, Any], path: str | os.PathLike) -> None:
    write_text_atomic(path, to_json(result))


def _title(summary: dict[str, Any]) -> str:
    dataset = summary.get("dataset") or {}
    where = " ".join(str(dataset[k]) for k in ("root", "split", "blur_kind") if k in dataset)
    runner = summary.get("runner", {}).get("runner", "?")
    return f"{summary.get('model') or 'model'} via {runner}" + (f" on {where}" if where else "")


_COLUMNS = ("image", "W×H", "blurred PSNR", "blurred SSIM", "deblurred PSNR", "deblurred SSIM", "gain dB", "s/image")
#: Narrow headers for the console (80 columns when not a terminal); the caption explains them.
_SHORT_COLUMNS = ("image", "W×H", "PSNR in", "SSIM in", "PSNR out", "SSIM out", "gain dB", "s/img")


def _row(name: str, size: str, item: dict[str, Any], seconds_key: str) -> list[str]:
    return [
        name, size, f"{item['psnr_blurred']:.2f}", f"{item['ssim_blurred']:.4f}", f"{item['psnr_deblurred']:.2f}",
        f"{item['ssim_deblurred']:.4f}", f"{item['gain_db']:+.2f}", f"{item[seconds_key]:.3f}",
    ]


def _rows(result: dict[str, Any], max_rows: int | None) -> list[list[str]]:
    images = result["images"]
    rows = []
    if max_rows is None or len(images) <= max_rows:
        rows = [_row(i["name"], f"{i['width']}x{i['height']}", i, "seconds") for i in images]
    summary = result["summary"]
    rows.append(_row(f"mean of {summary['images']}", "", summary, "seconds_per_image"))
    return rows


def render_table(result: dict[str, Any], max_rows: int | None = TABLE_MAX_ROWS) -> Table:
    """A rich table: one row per image (up to ``max_rows``) and the mean row."""
    table = Table(title=_title(result["summary"]), caption="in: blurred input vs sharp; out: deblurred vs sharp")
    for index, column in enumerate(_SHORT_COLUMNS):
        if index == 0:
            table.add_column(column, overflow="fold")
        else:
            table.add_column(column, justify="left" if index < 2 else "right", no_wrap=True)
    rows = _rows(result, max_rows)
    for index, row in enumerate(rows):
        table.add_row(*row, style="bold" if index == len(rows) - 1 else None)
    return table


def to_markdown(result: dict[str, Any]) -> str:
    """The same table as markdown (every image), with a line saying what was run."""
    summary = result["summary"]
    lines = [f"**{_title(summary)}**", "", "| " + " | ".join(_COLUMNS) + " |",
             "|" + "|".join(["---"] * 2 + ["---:"] * (len(_COLUMNS) - 2)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in _rows(result, None)]
    runner = summary.get("runner", {})
    lines += ["", f"Runner: {runner.get('runner', '?')} ({runner.get('device', '?')}, {runner.get('precision', '?')}); "
              f"tile: {summary.get('tile') or 'whole image'}; PSNR/SSIM on full frames, outputs clipped to [0, 1]."]
    return "\n".join(lines) + "\n"
