"""Latency measurement: warm-up, timed runs, percentiles, peak memory, roofline floor."""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass

import numpy as np
import torch

from runtimes.base import Runner


@dataclass(frozen=True)
class LatencyStats:
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    min_ms: float
    std_ms: float
    iters: int

    @classmethod
    def from_samples(cls, samples_ms: list[float]) -> "LatencyStats":
        values = np.asarray(samples_ms, dtype=np.float64)
        return cls(
            mean_ms=float(values.mean()),
            p50_ms=float(np.percentile(values, 50)),
            p90_ms=float(np.percentile(values, 90)),
            p99_ms=float(np.percentile(values, 99)),
            min_ms=float(values.min()),
            std_ms=float(statistics.pstdev(samples_ms)),
            iters=len(samples_ms),
        )


def warm_up(runner: Runner, x: torch.Tensor | np.ndarray, calls: int) -> None:
    """Untimed calls (library loading, kernel selection, a JIT's profiling runs), then a device sync;
    at least the runner's ``min_warmup_calls``."""
    for _ in range(max(calls, runner.min_warmup_calls)):
        runner.infer(x)
    runner.synchronize()


def time_calls(runner: Runner, x: torch.Tensor | np.ndarray, iters: int) -> list[float]:
    """Milliseconds of each of ``iters`` calls; on CUDA with CUDA events around each call (x stays on the GPU)."""
    if runner.device == "cuda":
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(iters)]
        for start, end in events:
            start.record()
            runner.infer(x)
            end.record()
        torch.cuda.synchronize()
        return [start.elapsed_time(end) for start, end in events]
    samples: list[float] = []
    for _ in range(iters):
        begin = time.perf_counter()
        runner.infer(x)
        samples.append((time.perf_counter() - begin) * 1e3)
    return samples


def time_runner(runner: Runner, x: torch.Tensor | np.ndarray, warmup: int, iters: int) -> LatencyStats:
    """Time ``runner.infer(x)``: ``warmup`` untimed calls, then ``iters`` timed ones."""
    warm_up(runner, x, warmup)
    return LatencyStats.from_samples(time_calls(runner, x, iters))


#: Rounds "disagree" when the slowest round's median is more than this times the fastest's.
#: On a quiet machine the round medians of one runner agree within a few per cent; a busy
#: spell that hits one round and not another pushes the ratio far past it (issue 26: 2x-8x).
ROUND_AGREEMENT_LIMIT = 1.25


def summarize_rounds(rounds_ms: list[list[float]]) -> dict[str, float | int | bool | list[float]]:
    """Latency of one row timed in several rounds (``rounds_ms[r]``: the calls of round r).

    ``p50_ms`` is the min of the round medians: the round least disturbed by other load (load only
    ever adds time). ``round_p50_ms`` lists the medians, ``round_spread`` is max/min of them and
    ``rounds_disagree`` says it exceeds :data:`ROUND_AGREEMENT_LIMIT`. mean/p90/p99/min/std pool
    every call of every round.
    """
    medians = [float(np.median(samples)) for samples in rounds_ms if samples]
    pooled = LatencyStats.from_samples([value for samples in rounds_ms for value in samples])
    spread = max(medians) / min(medians) if min(medians) > 0 else float("inf")
    stats = {key: value for key, value in pooled.__dict__.items() if key != "iters"}
    return {
        **stats,
        "calls": pooled.iters,
        "p50_ms": min(medians),
        "pooled_p50_ms": pooled.p50_ms,
        "round_p50_ms": medians,
        "rounds": len(medians),
        "round_spread": spread,
        "rounds_disagree": spread > ROUND_AGREEMENT_LIMIT,
    }


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


class PeakMemory:
    """Peak memory above the level at entry, sampled every few ms in a thread.

    CPU: the process's resident set (catches allocations of every runtime, not only
    torch's). CUDA: the device's used memory from cudaMemGetInfo, which also sees memory
    that TensorRT and ONNX Runtime allocate outside torch's allocator.
    """

    def __init__(self, device: str, interval_s: float = 0.005) -> None:
        self.device = device
        self.interval_s = interval_s
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _current(self) -> int:
        if self.device == "cuda":
            free, total = torch.cuda.mem_get_info()
            return total - free
        return _rss_bytes()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, self._current() - self.baseline)
            time.sleep(self.interval_s)

    def __enter__(self) -> "PeakMemory":
        self.baseline = self._current()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_bytes = max(self.peak_bytes, self._current() - self.baseline)

    @property
    def peak_mb(self) -> float:
        return self.peak_bytes / 2**20


def measure_peak_flops(device: str, precision: str, seconds: float = 1.0) -> float:
    """Arithmetic rate ``device`` sustains in a large square matmul, FLOP/s: a lower bound on its peak.

    benchmarks.peak takes it as the compute floor's ceiling only where it exceeds the
    instruction-set peak (the reported clock was too low) or no peak is known.
    """
    from dmphn_core.precision import torch_dtype
    from runtimes.torch_utils import tf32_mode

    dtype = torch_dtype(precision)
    if device == "cpu" and dtype == torch.float16:
        dtype = torch.float32  # no fast fp16 GEMM on x86 CPUs; fp32 is the honest ceiling
    n = 8192 if device == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    with tf32_mode(precision == "tf32"):
        torch.matmul(a, b)  # warm-up: library load, kernel selection
        if device == "cuda":
            torch.cuda.synchronize()
        runs, begin = 0, time.perf_counter()
        while time.perf_counter() - begin < seconds or runs < 3:
            torch.matmul(a, b)
            runs += 1
            if device == "cuda":
                torch.cuda.synchronize()
        elapsed = time.perf_counter() - begin
    return 2 * n**3 * runs / elapsed
