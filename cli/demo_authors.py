"""``dmphn-demo --model authors``: the authors' GoPro weights on one of their real blurred GoPro frames.

Fetches (or finds in the cache) the pinned, sha256-checked weights, the blurred test frame and
the output the authors' own test script wrote for it; deblurs the frame with this toolkit; scores
the blurred frame and our output against their published output (no sharp frames are published
with their test frames); writes ``blurred_ours_published.png``: the three labelled, and below them
the same three zoomed in where deblurring changed the frame most.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cli.ckpt import describe_missing
from cli.picture import centre_crop, comparison_picture
from dmphn_core import authors
from dmphn_core.errors import DMPHNError
from dmphn_core.fileio import strict_json, write_text_atomic
from dmphn_core.imageio import read_image, write_image
from dmphn_core.inference import deblur_image
from dmphn_core.metrics import psnr, ssim

#: The frame shown by default: one of the four their repository's test set and our reference copy share.
DEFAULT_FRAME = "000001"
PICTURE = "blurred_ours_published.png"


def fetch_weights_and_frame(variant: str, frame: str, *, base_url: str, cache: Path | None,
                            say: Callable[[str], None]) -> tuple[Path, Path, Path]:
    """``(checkpoint, blurred frame, their published output)`` in the cache, fetched when missing."""
    checkpoint = authors.cached_checkpoint_path(variant, cache)
    if not checkpoint.is_file():
        say(f"fetching the authors' DMPHN-{variant} weights (pinned commit {authors.COMMIT[:7]}, sha256-checked) "
            f"into {authors.mirror_dir(cache)}")
        authors.fetch_authors(variant, base_url=base_url, cache=cache)
    name = frame if frame.endswith(".png") else f"{frame}.png"
    wanted = [f"test_samples/{name}", f"{authors.published_outputs_folder(variant)}/{name}"]
    root = authors.mirror_dir(cache)
    if not all((root / relative).is_file() for relative in wanted):
        say(f"fetching their blurred test frame {name} and their published output for it")
    _, missing = authors.fetch_frames(root, base_url=base_url, only=wanted)
    if missing:
        raise DMPHNError(f"cannot fetch the authors' frame files ({describe_missing(missing)}); the weights are cached; "
                         "rerun to retry, or pass --base-url with a mirror")
    return checkpoint, root / wanted[0], root / wanted[1]


def run_authors_demo(model_alias: str, *, frame: str, base_url: str, cache: Path | None, out: Path,
                     crop_hw: tuple[int, int] | None, runtime: str, say: Callable[[str], None],
                     precision: str | None = None, min_psnr: float | None = None) -> dict[str, Any]:
    """Fetch, deblur one real blurred GoPro frame, score it against their published output, draw it.

    Returns the report (also written to ``out/report.json`` and ``report.md``).
    """
    from export.auto import runner_for_request

    variant = authors.MODEL_ALIASES[model_alias]
    begin = time.perf_counter()
    checkpoint, blurred_path, published_path = fetch_weights_and_frame(variant, frame, base_url=base_url,
                                                                       cache=cache, say=say)
    blurred, published = read_image(blurred_path), read_image(published_path)
    if crop_hw is not None:
        blurred, published = centre_crop(blurred, *crop_hw), centre_crop(published, *crop_hw)
    out.mkdir(parents=True, exist_ok=True)
    with runner_for_request(checkpoint, runtime, "cpu", precision, min_psnr=min_psnr, cache=cache, log=say) as runner:
        started = time.perf_counter()
        ours = np.clip(deblur_image(runner, blurred), 0.0, 1.0)
        deblur_seconds = time.perf_counter() - started
        runner_name = runner.name
    ours = np.round(ours * 255.0) / 255.0  # scored as written: 8 bits, rounded
    quality = {"blurred_vs_published_psnr_db": psnr(blurred, published), "blurred_vs_published_ssim": ssim(blurred, published),
               "ours_vs_published_psnr_db": psnr(ours, published), "ours_vs_published_ssim": ssim(ours, published)}
    for name, image in (("blurred", blurred), ("deblurred", ours), ("published", published)):
        write_image(out / f"{name}.png", image)
    labels = (f"blurred: {quality['blurred_vs_published_psnr_db']:.2f} dB vs theirs",
              f"ours: {quality['ours_vs_published_psnr_db']:.2f} dB vs theirs",
              "authors' published output")
    write_image(out / PICTURE, comparison_picture(blurred, ours, published, labels))
    height, width = blurred.shape[:2]
    say(f"DMPHN-{variant} (the authors' GoPro weights) deblurred their GoPro frame {blurred_path.name} "
        f"({width}x{height} WxH{', centre crop' if crop_hw else ''}) in {deblur_seconds:.2f}s with {runner_name}: "
        f"PSNR against their published output {quality['blurred_vs_published_psnr_db']:.2f} dB (blurred) -> "
        f"{quality['ours_vs_published_psnr_db']:.2f} dB (ours)")
    report: dict[str, Any] = {
        "model": f"DMPHN-{variant}", "weights": authors.weights_label(variant), "checkpoint": str(checkpoint),
        "frame": blurred_path.name, "size": [height, width], "crop_hw": list(crop_hw) if crop_hw else None,
        "quality": quality, "deblur_seconds": deblur_seconds, "deblur_runner": runner_name,
        "note": ("no sharp frames are published with the authors' test frames: PSNR/SSIM are against the output "
                 "their own test script wrote" + (" for the whole frame (ours ran on a crop, so the two differ "
                                                  "more than on whole frames)" if crop_hw else "")),
    }
    report["seconds"] = time.perf_counter() - begin
    write_text_atomic(out / "report.json", strict_json(report, indent=2))
    write_text_atomic(out / "report.md", _markdown(report))
    say(f"wrote {out}/: {PICTURE}, blurred.png, deblurred.png, published.png, report.json, report.md "
        f"({report['seconds']:.0f}s)")
    return report


def _markdown(report: dict[str, Any]) -> str:
    quality = report["quality"]
    height, width = report["size"]
    return "\n".join([
        f"# dmphn-demo --model authors — {report['model']} on their GoPro frame {report['frame']} ({width}x{height} WxH)",
        "",
        f"Weights: {report['weights']}; runner: {report['deblur_runner']}; {report['deblur_seconds']:.2f} s.",
        "",
        "| image | PSNR vs their published output (dB) | SSIM |",
        "| --- | ---: | ---: |",
        f"| blurred (their input) | {quality['blurred_vs_published_psnr_db']:.2f} | {quality['blurred_vs_published_ssim']:.4f} |",
        f"| ours | {quality['ours_vs_published_psnr_db']:.2f} | {quality['ours_vs_published_ssim']:.4f} |",
        "",
        f"![blurred, ours, published]({PICTURE})",
        "",
        report["note"][:1].upper() + report["note"][1:] + ".",
    ]) + "\n"
