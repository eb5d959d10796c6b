"""Time whole `dmphn-deblur` processes, two settings alternately, and compare their outputs.

    python scripts/time_deblur_processes.py FRAME CHECKPOINT OUTDIR --rounds 3 \
        --baseline "--runtime torch-ref" --candidate "--precision auto --min-psnr 40"

Each round runs the baseline, then the candidate, as fresh processes (imports, model load,
artifact load and the image I/O included: what a user waits for), on one frame, with the
artifact cache already warm. Writes OUTDIR/timing.json (strict JSON): every process's wall
seconds and the per-image seconds it printed, the ratios from the medians, the PSNR of the
candidate's output image against the baseline's, `uptime` before and after, and the machine.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import machine_info  # noqa: E402
from dmphn_core.fileio import strict_json, write_text_atomic  # noqa: E402
from dmphn_core.imageio import read_image  # noqa: E402
from runtimes.compare import psnr_db  # noqa: E402

PER_IMAGE = re.compile(r"([0-9.]+) s per image")


def run_once(frame: Path, checkpoint: Path, output: Path, options: str) -> dict:
    command = [sys.executable, "-m", "cli.deblur", str(frame), "-o", str(output), "--model", str(checkpoint),
               "--device", "cpu", *shlex.split(options)]
    begin = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - begin
    if done.returncode != 0:
        raise SystemExit(f"error: {' '.join(command)} failed: {done.stderr.strip()}")
    match = PER_IMAGE.search(done.stdout)
    return {"wall_s": wall, "per_image_s": float(match.group(1)) if match else None,
            "stdout": done.stdout.strip().splitlines()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("frame", type=Path)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", default="--runtime torch-ref")
    parser.add_argument("--candidate", default="--precision auto --min-psnr 40")
    args = parser.parse_args()
    args.outdir.mkdir(parents=True, exist_ok=True)
    uptime_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    runs: dict[str, list[dict]] = {"baseline": [], "candidate": []}
    for round_index in range(args.rounds):
        for name in ("baseline", "candidate"):
            result = run_once(args.frame, args.checkpoint, args.outdir / f"{name}.png", getattr(args, name))
            runs[name].append({"round": round_index + 1, **result})
            print(f"round {round_index + 1} {name}: {result['wall_s']:.2f} s wall, {result['per_image_s']} s per image",
                  flush=True)
    uptime_after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    median = {name: {key: statistics.median(r[key] for r in rows) for key in ("wall_s", "per_image_s")}
              for name, rows in runs.items()}
    quality = psnr_db(read_image(args.outdir / "candidate.png"), read_image(args.outdir / "baseline.png"))
    report = {
        "frame": str(args.frame), "checkpoint": str(args.checkpoint), "rounds": args.rounds,
        "baseline": args.baseline, "candidate": args.candidate, "runs": runs, "median": median,
        "speedup_wall": median["baseline"]["wall_s"] / median["candidate"]["wall_s"],
        "speedup_per_image": median["baseline"]["per_image_s"] / median["candidate"]["per_image_s"],
        "candidate_vs_baseline_psnr_db": quality,
        "uptime_before": uptime_before, "uptime_after": uptime_after, "machine": machine_info("cpu"),
    }
    write_text_atomic(args.outdir / "timing.json", strict_json(report, indent=2))
    print(f"speedup {report['speedup_wall']:.2f}x wall, {report['speedup_per_image']:.2f}x per image; "
          f"candidate vs baseline {quality:.2f} dB")


if __name__ == "__main__":
    main()
