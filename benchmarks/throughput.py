"""Throughput mode of dmphn-bench: many frames through each runtime's own concurrency.

Latency mode asks "how fast is one frame?"; throughput mode asks "how many frames a second,
with every frame in flight that the runtime wants?". Each runner is put in throughput mode
(:meth:`runtimes.base.Runner.prefer_throughput`: OpenVINO's THROUGHPUT hint and an
AsyncInferQueue of the requests it asks for, ONNX Runtime's parallel sessions; the others one
call after another, where ``--batch`` is the lever) and fed ``frames`` frames through
:meth:`~runtimes.base.Runner.infer_stream`. A row reports frames/s, the streams, requests and
batch used, and the per-frame latency (from when the runtime takes a frame to when its output
comes back, in order) p50/p90/p99, beside the latency-mode row of the same run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dmphn_core.errors import DMPHNError, RuntimeUnavailable
from dmphn_core.fileio import atomic_path
from runtimes.base import Runner

from .prepare import ArtifactCache, RunnerSpec, make_runner
from .report import _fmt, _table

MODES = ("latency", "throughput")
#: distinct inputs a throughput run cycles through (a 720p frame is 11 MB as float32)
DISTINCT_INPUTS = 4
#: the key every row of this module carries, so readers tell them from latency rows
MODE_KEY = "mode"


@dataclass(frozen=True)
class ThroughputSettings:
    #: frames timed per row (rounded up to whole batches)
    frames: int = 32
    #: parallel streams (None: each runtime's own choice)
    streams: int | None = None

    def check(self) -> None:
        if self.frames < 1:
            raise DMPHNError(f"--frames must be at least 1, got {self.frames}")
        if self.streams is not None and self.streams < 1:
            raise DMPHNError(f"--streams must be at least 1, got {self.streams}")


def parse_mode(text: str) -> str:
    if text not in MODES:
        raise DMPHNError(f"unknown --mode {text!r}; use latency or throughput")
    return text


def stream_inputs(batch: int, height: int, width: int, frames: np.ndarray | None, seed: int) -> list[np.ndarray]:
    """Up to :data:`DISTINCT_INPUTS` (B, 3, H, W) float32 inputs: from ``frames`` (N, 3, H, W) or seeded random."""
    if frames is not None:
        count = frames.shape[0]
        picks = [[(start + i) % count for i in range(batch)] for start in range(0, min(count, DISTINCT_INPUTS) * batch, batch)]
        return [np.ascontiguousarray(frames[p], dtype=np.float32) for p in picks]
    rng = np.random.default_rng(seed)
    return [rng.random((batch, 3, height, width), dtype=np.float32) for _ in range(DISTINCT_INPUTS)]


def measure_stream(runner: Runner, inputs: list[np.ndarray], frames: int) -> dict[str, Any]:
    """Time ``frames`` frames through ``runner.infer_stream`` (active runner): frames/s and per-frame latency.

    One warm-up round of as many inputs as the runner keeps in flight comes first, untimed.
    """
    concurrency = runner.concurrency()
    warm = max(1, concurrency.get("requests") or 1)
    for _ in runner.infer_stream(inputs[i % len(inputs)] for i in range(warm)):
        pass
    batch = inputs[0].shape[0]
    calls = math.ceil(frames / batch)
    taken: list[float] = []

    def feed() -> Iterable[np.ndarray]:
        for i in range(calls):
            taken.append(time.perf_counter())  # the runtime asked for this input now
            yield inputs[i % len(inputs)]

    latencies_ms: list[float] = []
    begin = time.perf_counter()
    for i, out in enumerate(runner.infer_stream(feed())):
        latencies_ms.append((time.perf_counter() - taken[i]) * 1e3)
        if out.shape != inputs[i % len(inputs)].shape:
            raise DMPHNError(f"{runner.name} returned {tuple(out.shape)} for input {inputs[0].shape}")
    wall_s = time.perf_counter() - begin
    if len(latencies_ms) != calls:
        raise DMPHNError(f"{runner.name}: {calls} inputs sent, {len(latencies_ms)} outputs came back")
    values = np.asarray(latencies_ms)
    concurrency = runner.concurrency()  # after the run: a cached runner knows its inner runtime now
    return {
        "frames": calls * batch, "wall_s": wall_s, "frames_per_s": calls * batch / wall_s,
        "images_per_s": calls * batch / wall_s,
        "p50_ms": float(np.percentile(values, 50)), "p90_ms": float(np.percentile(values, 90)),
        "p99_ms": float(np.percentile(values, 99)), "mean_ms": float(values.mean()), "min_ms": float(values.min()),
        "streams": concurrency.get("streams"), "requests": concurrency.get("requests"),
        **({"threads_per_stream": concurrency["threads_per_stream"]} if concurrency.get("threads_per_stream") else {}),
    }


def run_throughput(
    specs: Iterable[RunnerSpec],
    cache: ArtifactCache,
    *,
    shapes: list[tuple[int, int]],
    batches: list[int],
    settings: ThroughputSettings,
    threads: int | None,
    machine: dict[str, Any],
    frames: np.ndarray | None = None,
    frames_label: str = "",
    seed: int = 0,
    progress: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """One throughput row per (spec, batch, shape), keyed like the latency rows plus ``mode="throughput"``."""
    settings.check()
    config = cache.model.config
    rows: list[dict[str, Any]] = []
    for batch in batches:
        for height, width in shapes:
            for spec in specs:
                row: dict[str, Any] = {
                    MODE_KEY: "throughput", "runtime": spec.runtime, "runner": spec.label, "device": spec.device,
                    "precision": spec.precision, "batch": batch, "height": height, "width": width,
                    "threads": threads, "streams_asked": settings.streams, "model": config.name,
                    "levels": config.geometry.num_levels, "weights": cache.weights,
                    "input": frames_label if frames is not None else f"random(seed={seed})", "machine": machine,
                }
                reason = spec.unavailable_reason()
                if reason:
                    rows.append({**row, "status": "skipped", "reason": reason})
                    continue
                progress(f"run   {spec.label} batch {batch} {height}x{width}, throughput mode, {settings.frames} frames")
                try:
                    runner, _ = make_runner(spec, cache, batch, height, width, threads)
                    runner.prefer_throughput(settings.streams)
                    inputs = stream_inputs(batch, height, width, frames, seed)
                    begin = time.perf_counter()
                    with runner:
                        activate_s = time.perf_counter() - begin
                        row.update(measure_stream(runner, inputs, settings.frames), activate_s=activate_s,
                                   hint=runner.describe().get("performance_hint"))
                except RuntimeUnavailable as exc:
                    rows.append({**row, "status": "skipped", "reason": str(exc)})
                    continue
                except Exception as exc:  # noqa: BLE001 - one broken runtime must not hide the others
                    message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                    rows.append({**row, "status": "error", "reason": message})
                    progress(f"error {spec.label}: {message}")
                    continue
                rows.append({**row, "status": "ok"})
                progress(f"      {row['frames_per_s']:.2f} frames/s, {row['streams']} stream(s), "
                         f"{row['requests']} request(s), per-frame p50 {row['p50_ms']:.1f} ms")
    return rows


def _key(row: dict[str, Any]) -> tuple:
    return row["runtime"], row["device"], row["precision"], row["batch"], row["height"], row["width"]


def add_gains(latency_rows: list[dict[str, Any]], throughput_rows: list[dict[str, Any]]) -> None:
    """``latency_frames_per_s`` (batch / the latency row's p50, same run) and ``gain`` on each throughput row."""
    latency = {_key(r): r for r in latency_rows if r.get("status") == "ok" and r.get(MODE_KEY, "latency") == "latency"}
    for row in throughput_rows:
        match = latency.get(_key(row))
        if row.get("status") == "ok" and match is not None:
            row["latency_frames_per_s"] = row["batch"] / (match["p50_ms"] / 1e3)
            row["latency_p50_ms"] = match["p50_ms"]
            row["gain"] = row["frames_per_s"] / row["latency_frames_per_s"]


def throughput_markdown(rows: list[dict[str, Any]]) -> str:
    header = ["runner", "batch", "H×W", "latency mode frames/s", "throughput frames/s", "gain", "streams",
              "requests", "per-frame p50 ms", "p99 ms", "status"]
    lines = []
    for r in rows:
        ok = r.get("status") == "ok"
        lines.append([
            r["runner"], str(r["batch"]), f"{r['height']}×{r['width']}", _fmt(r.get("latency_frames_per_s")),
            _fmt(r.get("frames_per_s")), f"{r['gain']:.2f}x" if r.get("gain") else "–",
            _fmt(r.get("streams")), _fmt(r.get("requests")), _fmt(r.get("p50_ms")), _fmt(r.get("p99_ms")),
            "ok" if ok else f"{r.get('status')}: {r.get('reason', '')}",
        ])
    note = ("Throughput mode: each runtime's own concurrency (OpenVINO THROUGHPUT hint + AsyncInferQueue; "
            "ONNX Runtime parallel sessions; others sequential, batch as the lever). Per-frame latency: "
            "from when the runtime takes a frame to when its output comes back, in order.")
    return _table(header, lines) + "\n\n" + note + "\n"


def plot_throughput(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Bars: latency-mode vs throughput-mode frames/s per runner, one group per batch and shape."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r.get("status") == "ok" and r.get("latency_frames_per_s")]
    if not ok:
        return
    labels = [f"{r['runner']}\nb{r['batch']} {r['height']}×{r['width']}" for r in ok]
    xs = np.arange(len(ok))
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(ok)), 4.5))
    ax.bar(xs - 0.2, [r["latency_frames_per_s"] for r in ok], 0.4, label="latency mode (1 request)")
    ax.bar(xs + 0.2, [r["frames_per_s"] for r in ok], 0.4, label="throughput mode")
    for x, r in zip(xs, ok):
        ax.annotate(f"{r['gain']:.2f}x\n{r['streams']}s/{r['requests']}r", (x + 0.2, r["frames_per_s"]),
                    ha="center", va="bottom", fontsize=7)
    ax.set_xticks(xs, labels, fontsize=7)
    ax.set_ylabel("frames/s")
    machine = ok[0]["machine"]
    ax.set_title(f"{ok[0]['model']} — {machine.get('cpu', '')}, {machine.get('date', '')}", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
