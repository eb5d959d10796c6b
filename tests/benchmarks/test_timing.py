"""Round summaries: the headline is the least disturbed round, and rounds that disagree are flagged."""

from __future__ import annotations

import pytest

from benchmarks.timing import ROUND_AGREEMENT_LIMIT, summarize_rounds


def test_headline_is_min_of_round_medians_and_pooled_stats_cover_every_call():
    summary = summarize_rounds([[10.0, 11.0, 30.0], [9.0, 9.5, 10.0], [12.0, 12.5, 13.0]])
    assert summary["round_p50_ms"] == [11.0, 9.5, 12.5]
    assert summary["p50_ms"] == 9.5 and summary["min_ms"] == 9.0 and summary["calls"] == 9
    assert summary["round_spread"] == pytest.approx(12.5 / 9.5)
    assert summary["rounds_disagree"] is (12.5 / 9.5 > ROUND_AGREEMENT_LIMIT)


def test_a_busy_round_is_flagged_but_does_not_move_the_headline():
    quiet, busy = [100.0, 101.0, 99.0], [400.0, 420.0, 390.0]  # issue 26: 4x on a loaded machine
    summary = summarize_rounds([quiet, busy])
    assert summary["p50_ms"] == 100.0 and summary["rounds_disagree"] and summary["rounds"] == 2
    steady = summarize_rounds([quiet, [102.0, 103.0, 101.0]])
    assert not steady["rounds_disagree"]


def test_warm_up_gives_a_jit_its_profiling_calls_whatever_was_asked():
    import torch

    from benchmarks.timing import warm_up
    from runtimes.base import Runner
    from runtimes.torchscript import TorchScriptRunner

    class Counting(Runner):
        runtime = "counting"
        min_warmup_calls = TorchScriptRunner.min_warmup_calls

        def _activate(self) -> None:
            self.calls = 0

        def _infer(self, x: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            return x

        def _deactivate(self) -> None:
            pass

    assert TorchScriptRunner.min_warmup_calls >= 2  # profiling run + optimising run
    with Counting(device="cpu") as runner:
        warm_up(runner, torch.zeros(1, 3, 8, 8), 0)
        assert runner.calls == TorchScriptRunner.min_warmup_calls
        warm_up(runner, torch.zeros(1, 3, 8, 8), 5)
        assert runner.calls == TorchScriptRunner.min_warmup_calls + 5
