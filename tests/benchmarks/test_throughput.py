"""Throughput mode of dmphn-bench: frames counted, latency per frame, gain against the latency row."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from benchmarks.throughput import ThroughputSettings, add_gains, measure_stream, parse_mode, stream_inputs
from dmphn_core.errors import DMPHNError
from runtimes.base import Runner


class _Sleeper(Runner):
    """Fake runtime: y = x after ``delay`` seconds per call."""

    runtime = "fake"

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def _activate(self) -> None:
        pass

    def _infer(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.delay)
        return x


def test_measure_stream_counts_whole_batches_and_times_each_frame():
    inputs = stream_inputs(2, 4, 8, None, seed=0)
    with _Sleeper(0.01) as runner:
        result = measure_stream(runner, inputs, frames=7)
    assert result["frames"] == 8  # rounded up to whole batches of 2
    assert result["streams"] == 1 and result["requests"] == 1
    assert 0.01 * 1e3 <= result["p50_ms"] <= result["p99_ms"]
    assert result["frames_per_s"] == pytest.approx(8 / result["wall_s"])
    assert result["frames_per_s"] < 2 / 0.01  # cannot beat one batch per delay


def test_stream_inputs_cycle_the_given_frames():
    frames = np.arange(3 * 3 * 2 * 2, dtype=np.float32).reshape(3, 3, 2, 2)
    inputs = stream_inputs(2, 2, 2, frames, seed=0)
    assert len(inputs) == 3 and inputs[0].shape == (2, 3, 2, 2)
    np.testing.assert_array_equal(inputs[1][0], frames[2])
    np.testing.assert_array_equal(inputs[1][1], frames[0])


def test_gain_is_throughput_over_the_latency_row_of_the_same_settings():
    key = {"runtime": "ov", "device": "cpu", "precision": "fp32", "batch": 2, "height": 4, "width": 8}
    latency = [{**key, "status": "ok", "p50_ms": 100.0}, {**key, "precision": "bf16", "status": "ok", "p50_ms": 1.0}]
    stream = [{**key, "mode": "throughput", "status": "ok", "frames_per_s": 30.0}]
    add_gains(latency, stream)
    assert stream[0]["latency_frames_per_s"] == pytest.approx(20.0)
    assert stream[0]["gain"] == pytest.approx(1.5)


def test_settings_and_mode_are_checked():
    with pytest.raises(DMPHNError, match="--frames"):
        ThroughputSettings(frames=0).check()
    with pytest.raises(DMPHNError, match="--streams"):
        ThroughputSettings(streams=0).check()
    with pytest.raises(DMPHNError, match="latency or throughput"):
        parse_mode("fast")
