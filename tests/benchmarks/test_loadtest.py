"""Load-test bookkeeping with in-process fake clients: every request counted once, errors and parity judged."""

from __future__ import annotations

import json
import math
import threading

import numpy as np
import pytest
import torch

from benchmarks.loadtest import LoadSettings, loadtest_markdown, run_loadtest, write_strict_json
from dmphn_core.errors import DMPHNError
from runtimes.base import Runner
from runtimes.compare import tolerance_for

H, W = 8, 16


class _Doubler(Runner):
    """Fake served model: y = 2x, optionally off by ``offset`` or failing on some calls."""

    runtime = "fake"
    calls = 0
    lock = threading.Lock()

    def __init__(self, *, offset: float = 0.0, fail_every: int | None = None, fail_connect: bool = False) -> None:
        super().__init__()
        self.offset, self.fail_every, self.fail_connect = offset, fail_every, fail_connect

    def _activate(self) -> None:
        if self.fail_connect:
            raise DMPHNError("cannot reach the server")

    def _infer(self, x: torch.Tensor) -> torch.Tensor:
        with _Doubler.lock:
            _Doubler.calls += 1
            call = _Doubler.calls
        if self.fail_every and call % self.fail_every == 0:
            raise DMPHNError(f"{self.name}: connection reset")
        return 2 * x + self.offset


class _Reference(_Doubler):
    pass


@pytest.fixture(autouse=True)
def _reset_calls():
    _Doubler.calls = 0


def test_counts_every_request_once_across_clients():
    summary, records = run_loadtest(_Doubler, LoadSettings(clients=3, requests=50), H, W, reference=_Reference())
    assert [r.ticket for r in records] == list(range(50))
    assert summary["sent"] == summary["ok"] == 50 and summary["errors"] == 0
    assert {r.client for r in records} <= {0, 1, 2}
    assert summary["parity"] == {"tolerance": "max_abs<=0.0001", "checked": 50, "mismatches": 0, "max_abs": 0.0,
                                 "min_psnr_db": None, "identical": True}
    assert summary["status"] == "ok"
    assert summary["requests_per_s"] > 0 and summary["p50_ms"] <= summary["p99_ms"]
    assert summary["local_p50_ms"] >= 0  # the reference runner timed in the same run


def test_failures_are_reported_with_their_reason_and_the_client_reconnects():
    summary, records = run_loadtest(lambda: _Doubler(fail_every=5), LoadSettings(clients=2, requests=40), H, W)
    failed = [r for r in records if not r.ok]
    assert len(records) == 40 and summary["ok"] + summary["errors"] == 40
    assert len(failed) == 8 and summary["error_kinds"] == {"connection reset": 8}
    assert summary["status"] == "fail"


def test_unreachable_server_fails_every_request_without_hanging():
    summary, records = run_loadtest(lambda: _Doubler(fail_connect=True), LoadSettings(clients=2, requests=6), H, W)
    assert summary["ok"] == 0 and summary["errors"] == 6
    assert summary["error_kinds"] == {"cannot reach the server": 6}
    assert "p50_ms" not in summary and summary["status"] == "fail"


def test_answers_off_the_local_runner_fail_parity():
    summary, _ = run_loadtest(lambda: _Doubler(offset=1e-3), LoadSettings(clients=2, requests=10), H, W,
                              reference=_Reference(), tolerance=tolerance_for("fp32"))
    assert summary["errors"] == 0
    assert summary["parity"]["mismatches"] == 10 and summary["parity"]["max_abs"] == pytest.approx(1e-3, rel=1e-3)
    assert summary["status"] == "fail"


def test_duration_bound_stops_the_clients():
    summary, _ = run_loadtest(_Doubler, LoadSettings(clients=2, requests=None, duration_s=0.3), H, W)
    assert summary["sent"] > 0 and summary["errors"] == 0 and summary["wall_s"] < 5


@pytest.mark.parametrize(("settings", "message"), [
    (LoadSettings(clients=0), "--clients"),
    (LoadSettings(requests=None), "requests or a duration"),
    (LoadSettings(requests=0), "--requests"),
    (LoadSettings(requests=None, duration_s=-1.0), "--duration"),
])
def test_bad_settings(settings, message):
    with pytest.raises(DMPHNError, match=message):
        run_loadtest(_Doubler, settings, H, W)


def test_reports_are_strict_json_and_markdown(tmp_path):
    summary, _ = run_loadtest(lambda: _Doubler(fail_every=3), LoadSettings(clients=1, requests=6), H, W,
                              reference=_Reference())
    row = {"protocol": "http", **summary, "machine": {"cpu": "test cpu", "date": "today"}}
    path = tmp_path / "load.json"
    write_strict_json(path, [row])
    assert json.loads(path.read_text())[0]["error_kinds"] == {"connection reset": 2}
    with pytest.raises(ValueError):
        write_strict_json(tmp_path / "bad.json", {"psnr": math.inf})
    assert not (tmp_path / "bad.json").exists()
    table = loadtest_markdown([row])
    assert "| http | 1 | 1 | 8×16 | 6 | 4 | 2 |" in table and "**FAIL**" in table
    assert "2× connection reset" in table and "test cpu" in table


def test_inputs_are_seeded():
    from benchmarks.loadtest import make_inputs

    a, b = make_inputs(LoadSettings(seed=3), H, W), make_inputs(LoadSettings(seed=3), H, W)
    assert len(a) == 8 and all(np.array_equal(x, y) for x, y in zip(a, b))
    assert a[0].dtype == np.float32 and a[0].shape == (1, 3, H, W)
