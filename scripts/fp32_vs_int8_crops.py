"""Picture for docs/benchmarks.md: the same blurred photo through an fp32 and an int8 OpenVINO IR.

Usage: python scripts/fp32_vs_int8_crops.py FP32.xml INT8.xml OUT.png [--crop Y X H W]

The input is a bundled held-out photo (scikit-image's rocket) blurred along a camera-shake
path at the IRs' export shape, so the picture ships nothing that is not ours to ship. Panels,
left to right: blurred input, fp32 output, int8 output, |fp32 - int8| x 10; PSNR of int8 vs
fp32 over the whole image is printed and written in the title row.
"""

from __future__ import annotations

import argparse

import numpy as np

from dmphn_core.artifact import read_metadata
from dmphn_core.imageio import write_image
from export.verify import blurred_photos
from runtimes.compare import psnr_db
from runtimes.openvino import OpenVINORunner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fp32")
    parser.add_argument("int8")
    parser.add_argument("out")
    parser.add_argument("--crop", type=int, nargs=4, metavar=("Y", "X", "H", "W"), default=None)
    args = parser.parse_args()
    _, _, height, width = read_metadata(args.fp32)["export_shape"]
    x = blurred_photos(1, height, width, seed=0, offset=0)
    with OpenVINORunner(args.fp32, threads=2) as runner:
        fp32 = runner.infer(x)
    with OpenVINORunner(args.int8, precision="int8", threads=2) as runner:
        int8 = runner.infer(x)
    psnr = psnr_db(int8, fp32)
    y0, x0, h, w = args.crop or (height // 4, width // 4, height // 2, width // 2)
    panels = [a[0].transpose(1, 2, 0)[y0 : y0 + h, x0 : x0 + w] for a in (x, fp32, int8)]
    panels.append(np.abs(panels[1] - panels[2]) * 10.0)
    gap = np.ones((h, 6, 3), np.float32)
    row = np.concatenate([p for panel in panels for p in (np.clip(panel, 0, 1), gap)][:-1], axis=1)
    write_image(args.out, row)
    print(f"int8 vs fp32 PSNR over the whole {height}x{width} image: {psnr:.2f} dB; crop y={y0} x={x0} {h}x{w}")


if __name__ == "__main__":
    main()
