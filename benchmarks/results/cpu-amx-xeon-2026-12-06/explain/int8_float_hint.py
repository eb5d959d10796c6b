"""OpenVINO int8 IR with its float layers in f32 (the runner's default) or bf16, vs the float IR in
f32 and bf16, plus ONNX Runtime fp32/int8: round-robin latency (exclusive lock) or PSNR vs the eager
PyTorch fp32 output on the authors' frames (shared lock), and the per-kernel profile of each.

usage: python int8_float_hint.py time|quality|profile WORKDIR CHECKPOINT FRAMES_DIR OUT.json
(WORKDIR: a dmphn-bench --workdir holding the 352x640 artifacts; run from the worktree with PYTHONPATH=.)
"""

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.machine import machine_info
from benchmarks.parity import load_frames
from dmphn_core.checkpoint import load_checkpoint
from dmphn_core.fileio import strict_json, write_text_atomic
from export.verify import reference_output
from runtimes.compare import compare_outputs
from runtimes.onnxruntime import OnnxRuntimeRunner
from runtimes.openvino import OpenVINORunner, cpu_capabilities
from dmphn_core.precision import Tolerance

mode, workdir, checkpoint, frames_dir, out = sys.argv[1], Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4]), Path(sys.argv[5])
IR = {p: workdir / f"openvino_b1_352x640_cpu_{'int8' if p == 'int8' else 'fp32'}.xml" for p in ("fp32", "int8")}
ONNX = {p: workdir / f"onnx_b1_352x640_cpu_{p}.onnx" for p in ("fp32", "int8")}
RUNNERS = {
    "ov fp32 (f32 hint)": lambda: OpenVINORunner(IR["fp32"], precision="fp32", threads=2),
    "ov bf16 (float IR, bf16 hint)": lambda: OpenVINORunner(IR["fp32"], precision="bf16", threads=2),
    # "default": the runner's default when this ran (before int8_float_hint="auto")
    "ov int8 (f32 hint: default)": lambda: OpenVINORunner(IR["int8"], precision="int8", threads=2, int8_float_hint="f32"),
    "ov int8 (bf16 hint)": lambda: OpenVINORunner(IR["int8"], precision="int8", threads=2, int8_float_hint="bf16"),
    "ort fp32": lambda: OnnxRuntimeRunner(ONNX["fp32"], precision="fp32", threads=2),
    "ort int8": lambda: OnnxRuntimeRunner(ONNX["int8"], precision="int8", threads=2),
}
frames = load_frames(frames_dir)
report = {"mode": mode, "machine": {**machine_info("cpu"), "openvino_capabilities": list(cpu_capabilities())},
          "frames": [name for name, _ in frames], "rows": {}}

if mode == "quality":
    model = load_checkpoint(checkpoint).build_model()
    truth = [reference_output(model, x) for _, x in frames]
    for label, make in RUNNERS.items():
        with make() as runner:
            psnr = [compare_outputs(runner.infer(x), ref, Tolerance()).psnr_db for (_, x), ref in zip(frames, truth)]
        report["rows"][label] = {"psnr_db_vs_fp32": psnr}
        print(label, " / ".join(f"{p:.2f}" for p in psnr), flush=True)
elif mode == "time":
    rounds, x = 5, frames[0][1]
    runners = {label: make() for label, make in RUNNERS.items()}
    for runner in runners.values():
        runner.activate()
        runner.infer(x)  # warm-up
    times = {label: [] for label in runners}
    for _ in range(rounds):  # round-robin: every runner once per round, so load that comes and goes hits all
        for label, runner in runners.items():
            begin = time.perf_counter()
            runner.infer(x)
            times[label].append((time.perf_counter() - begin) * 1e3)
    for label, values in times.items():
        report["rows"][label] = {"median_ms": statistics.median(values), "min_ms": min(values), "all_ms": values}
        print(f"{label}: median {statistics.median(values):.0f} ms, min {min(values):.0f} ms", flush=True)
elif mode == "profile":
    x = frames[0][1]
    for label, make in RUNNERS.items():
        with make() as runner:
            profile = runner.profile(x)
        report["rows"][label] = profile.to_dict(10)
        print(label, f"{profile.wall_ms:.0f} ms", [(k["kernel"], k["precision"], round(k["total_ms"]), k["calls"])
                                                   for k in profile.by_kernel()[:6]], flush=True)
write_text_atomic(out, strict_json(report, indent=1))
