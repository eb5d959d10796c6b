"""How closely this toolkit's model, with the authors' GoPro weights, reproduces their published outputs.

Per frame and variant: the frame deblurred by the static-shape model in PyTorch fp32 on CPU,
compared with what the authors' test script wrote (see
:func:`dmphn_core.authors.compare_with_published`). Writes a markdown table and strict JSON::

    python -m benchmarks.authors_fidelity --reference ../shared/reference/dmphn-authors \\
        --markdown fidelity.md --json fidelity.json
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from dmphn_core import authors
from dmphn_core.checkpoint import import_authors_checkpoint
from dmphn_core.fileio import write_text_atomic
from dmphn_core.imageio import image_to_tensor, list_images, read_image, tensor_to_image

from .machine import machine_info
from .report import machine_block


def measure(reference: Path, variants: list[str], progress=print) -> list[dict]:
    """One row per (variant, frame present in ``reference/test_samples`` with a published output)."""
    rows = []
    for variant in variants:
        weights = reference / "checkpoints" / authors.VARIANTS[variant]
        model = import_authors_checkpoint(weights).build_model()
        # name the authors only when the files are theirs, byte for byte (manifest sha256)
        label = authors.weights_label(variant) if authors.identify_variant(weights) == variant else f"per-level files in {weights}"
        published = reference / authors.published_outputs_folder(variant)
        for frame in list_images(reference / "test_samples"):
            if not (published / frame.name).is_file():
                continue
            image = read_image(frame)
            begin = time.perf_counter()
            with torch.inference_mode():
                output = tensor_to_image(model(image_to_tensor(image)))
            seconds = time.perf_counter() - begin
            theirs = (read_image(published / frame.name) * 255.0 + 0.5).astype("uint8")
            row = {"variant": variant, "weights": label, "frame": frame.name,
                   "height": image.shape[0], "width": image.shape[1], "seconds": seconds,
                   **authors.compare_with_published(output, theirs)}
            rows.append(row)
            progress(f"DMPHN-{variant} {frame.name}: PSNR {row['psnr_db']:.2f} dB, mean |d| {row['mean_abs_lsb']:.3f} LSB, "
                     f"{row['identical_truncated']:.4%} identical with truncation, max {row['max_abs_truncated_lsb']} LSB "
                     f"({seconds:.0f} s)")
    return rows


def markdown(rows: list[dict], machine: dict) -> str:
    lines = [machine_block(machine), "",
             "| variant | frame | PSNR vs theirs (ours rounded) dB | mean \\|Δ\\| LSB | mean Δ LSB | identical, their truncation emulated | max \\|Δ\\| LSB (truncated) |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| DMPHN-{r['variant']} | {r['frame']} | {r['psnr_db']:.2f} | {r['mean_abs_lsb']:.3f} | "
                     f"{r['mean_signed_lsb']:+.3f} | {r['identical_truncated']:.4%} | {r['max_abs_truncated_lsb']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, default=None,
                        help=f"local copy of the authors' files (default: ${authors.REFERENCE_DIR_ENV})")
    parser.add_argument("--variant", action="append", choices=list(authors.VARIANTS), help="repeatable (default: both)")
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    reference = args.reference or authors.reference_dir()
    if reference is None or not reference.is_dir():
        parser.error(f"no reference folder: pass --reference or set {authors.REFERENCE_DIR_ENV}")
    machine = machine_info("cpu")
    rows = measure(reference, args.variant or list(authors.VARIANTS))
    for row in rows:
        row["machine"] = machine
    table = markdown(rows, machine)
    print(table)
    if args.markdown:
        write_text_atomic(args.markdown, table)
    if args.json:
        finite = [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()} for r in rows]
        write_text_atomic(args.json, json.dumps(finite, indent=2, allow_nan=False) + "\n")


if __name__ == "__main__":
    main()
