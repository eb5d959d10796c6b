"""run_benchmark: round-robin order, rows reported as soon as known, a row failing mid-run."""

from __future__ import annotations

from pathlib import Path

import pytest

import benchmarks.bench as bench
from benchmarks.bench import BenchSettings, run_benchmark
from benchmarks.prepare import ArtifactCache, RunnerSpec

SHAPE = (32, 64)


def _run(checkpoint: Path, tmp_path: Path, specs: list[RunnerSpec], rounds: int = 2, **options):
    emitted: list[dict] = []
    log: list[str] = []
    settings = BenchSettings(shapes=[SHAPE], batches=[1], warmup=0, iters=2, rounds=rounds, threads=1,
                             peak_flops={"fp32": 1e12}, **options)
    rows = run_benchmark(specs, ArtifactCache(checkpoint, tmp_path / "w"), settings, {"cpu": "test"},
                         progress=log.append, on_row=emitted.append)
    return rows, emitted, log


def test_rows_are_timed_round_robin_and_streamed_as_known(make_checkpoint, tmp_path):
    specs = [RunnerSpec("torch", "cpu", "fp32"), RunnerSpec("trt", "cpu", "fp32"), RunnerSpec("torch-ref", "cpu", "fp32")]
    rows, emitted, log = _run(make_checkpoint(2), tmp_path, specs, rounds=3)
    # every row once per round, in the same order each round
    turns = [line.split()[2] for line in log if line.startswith("round ")]
    assert turns == ["torch-cpu-fp32", "torch-ref-cpu-fp32"] * 3
    # the skipped row first, then a partial row per timed row per round, then the final rows
    assert [(r["runtime"], r["status"]) for r in emitted] == [
        ("trt", "skipped"),
        *[(name, "partial") for _ in range(3) for name in ("torch", "torch-ref")],
        ("torch", "ok"), ("torch-ref", "ok"),
    ]
    assert [r["rounds"] for r in emitted if r["status"] == "partial"] == [1, 1, 2, 2, 3, 3]
    final = {r["runtime"]: r for r in rows}
    for key in ("torch", "torch-ref"):
        row = final[key]
        assert len(row["round_p50_ms"]) == 3 and row["p50_ms"] == min(row["round_p50_ms"])
        assert row["round_spread"] == pytest.approx(max(row["round_p50_ms"]) / min(row["round_p50_ms"]))
        assert row["calls"] == 6 and len(row["load_1min"]) == 3 and isinstance(row["load_high"], bool)
    assert final["torch"]["speedup_vs_ref"] == pytest.approx(final["torch-ref"]["p50_ms"] / final["torch"]["p50_ms"])


def test_a_row_failing_in_a_later_round_is_reported_at_once_and_others_finish(make_checkpoint, tmp_path, monkeypatch):
    calls: dict[str, int] = {}
    real = bench.time_calls

    def flaky(runner, x, iters):
        calls[runner.name] = calls.get(runner.name, 0) + 1
        if runner.name == "torch-cpu-fp32" and calls[runner.name] == 2:
            raise RuntimeError("lost the device\nsecond line")
        return real(runner, x, iters)

    monkeypatch.setattr(bench, "time_calls", flaky)
    specs = [RunnerSpec("torch", "cpu", "fp32"), RunnerSpec("torch-ref", "cpu", "fp32")]
    rows, emitted, _ = _run(make_checkpoint(2), tmp_path, specs, rounds=3)
    assert [(r["runtime"], r["status"]) for r in emitted] == [
        ("torch", "partial"), ("torch-ref", "partial"),
        ("torch", "error"),
        ("torch-ref", "partial"), ("torch-ref", "partial"), ("torch-ref", "ok"),
    ]
    torch_row = next(r for r in rows if r["runtime"] == "torch")
    assert torch_row["reason"] == "RuntimeError: lost the device" and "p50_ms" not in torch_row


def test_runners_can_be_released_between_rounds(make_checkpoint, tmp_path, monkeypatch):
    activations: list[str] = []
    real = bench.warm_up

    def counting(runner, x, calls):
        activations.append(runner.name)
        return real(runner, x, calls)

    monkeypatch.setattr(bench, "warm_up", counting)
    specs = [RunnerSpec("torch", "cpu", "fp32")]
    _run(make_checkpoint(1), tmp_path, specs, rounds=3, keep_active=False)
    assert activations == ["torch-cpu-fp32"] * 3  # warmed up again after each release
    activations.clear()
    _run(make_checkpoint(1), tmp_path, specs, rounds=3)
    assert activations == ["torch-cpu-fp32"]  # kept: warmed up once
