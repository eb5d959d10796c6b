"""Round-robin latency of several runners in one process (the record of how this folder's numbers were made).

dmphn-bench on this branch times each row in its own block; the bench-core branch adds round-robin to it.
Until then: every runner is activated once, then each round calls every runner once, in turn, on the same
frame; a row's number is the median of its rounds (and the min). Artifacts come from the bench's --workdir
(exported and verified beforehand, under the shared lock), so this only times.

    python roundrobin.py CKPT FRAME.png WORKDIR ROUNDS OUT.json runtime:precision ...
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.machine import machine_info
from benchmarks.prepare import ArtifactCache, RunnerSpec, make_runner
from dmphn_core.imageio import read_image


def main() -> None:
    checkpoint, frame, workdir, rounds, out, *pairs = sys.argv[1:]
    image = read_image(frame)
    x = np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32)
    _, _, height, width = x.shape
    cache = ArtifactCache(Path(checkpoint), Path(workdir))
    runners = []
    for pair in pairs:
        runtime, precision = pair.split(":")
        runner, _ = make_runner(RunnerSpec(runtime, "cpu", precision), cache, 1, height, width, threads=2)
        runner.activate()
        runner.infer(x)  # warm-up
        runners.append((pair, runner))
    samples: dict[str, list[float]] = {pair: [] for pair, _ in runners}
    for _ in range(int(rounds)):
        for pair, runner in runners:
            begin = time.perf_counter()
            runner.infer(x)
            samples[pair].append((time.perf_counter() - begin) * 1000.0)
    base = statistics.median(samples[pairs[0]])
    rows = [{"runtime": pair.split(":")[0], "precision": pair.split(":")[1], "height": height, "width": width,
             "batch": 1, "device": "cpu", "status": "ok", "p50_ms": statistics.median(values), "min_ms": min(values),
             "samples_ms": values, "speedup_vs_first_p50": base / statistics.median(values)}
            for pair, values in samples.items()]
    report = {"machine": machine_info("cpu"), "weights": cache.weights, "frame": str(frame), "rounds": int(rounds),
              "threads": 2, "rows": rows}
    Path(out).write_text(json.dumps(report, indent=2, default=str))
    for row in rows:
        print(f"{row['runtime']:>9} {row['precision']:<5} p50 {row['p50_ms']:9.1f} ms  min {row['min_ms']:9.1f} ms  "
              f"x{row['speedup_vs_first_p50']:.2f} vs {pairs[0]}")


if __name__ == "__main__":
    main()
