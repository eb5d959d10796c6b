"""Concurrency sweep and config search bookkeeping, with in-process fake clients (no server)."""

from __future__ import annotations

import time

import pytest

from benchmarks.loadsweep import (
    GridPoint,
    configure,
    parse_concurrency,
    parse_grid,
    plot_sweep,
    run_search,
    run_sweep,
    sweep_markdown,
    write_best_config,
)
from dmphn_core.errors import DMPHNError
from tests.benchmarks.test_loadtest import H, W, _Doubler

pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="tritonclient[grpc] is not installed")


def test_parse_concurrency_lists_and_ranges():
    assert parse_concurrency("1,2,4,8,16") == [1, 2, 4, 8, 16]
    assert parse_concurrency("2:8:2") == [2, 4, 6, 8]
    assert parse_concurrency("1:3") == [1, 2, 3]
    for bad in ("0,1", "4:2", "1:8:0", "a,b", "1:1000"):
        with pytest.raises(DMPHNError, match="--concurrency"):
            parse_concurrency(bad)


def test_sweep_has_one_row_per_level_with_enough_requests_per_client():
    rows = run_sweep(_Doubler, [1, 3], requests=4, duration_s=None, batch=1, height=H, width=W, progress=lambda _: None)
    assert [r["concurrency"] for r in rows] == [1, 3]
    assert [r["sent"] for r in rows] == [4, 6]  # at least two requests per client
    assert all(r["status"] == "ok" and r["p50_ms"] <= r["p99_ms"] for r in rows)
    assert "| as served | ? | 3 | 6 | 6 | 0 |" in sweep_markdown(rows)


def test_plot_is_a_png(tmp_path):
    rows = run_sweep(_Doubler, [1, 2], requests=4, duration_s=None, batch=1, height=H, width=W, progress=lambda _: None)
    plot_sweep(tmp_path / "sweep.png", rows)
    assert (tmp_path / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _base():
    config = pb2.ModelConfig(name="dmphn", max_batch_size=4)
    config.instance_group.add(count=1)
    config.dynamic_batching.preferred_batch_size.extend([2, 4])
    return config


def test_grid_is_bounded_and_checked_against_max_batch():
    points = parse_grid("1,2", "0,4", "100", max_batch=4)
    assert [p.label for p in points][:2] == ["1x inst, pref -, delay 100 us", "1x inst, pref 4, delay 100 us"]
    with pytest.raises(DMPHNError, match="max_batch_size 4"):
        parse_grid("1", "8", "0", max_batch=4)
    with pytest.raises(DMPHNError, match="at most"):
        parse_grid("1,2,3,4,5", "0,1,2,4", "0", max_batch=4)
    config = configure(_base(), GridPoint(3, 0, 500))
    assert config.instance_group[0].count == 3 and list(config.dynamic_batching.preferred_batch_size) == []
    assert config.dynamic_batching.max_queue_delay_microseconds == 500 and _base().instance_group[0].count == 1


def test_search_reloads_each_point_and_picks_the_fastest_within_budget(tmp_path):
    loaded = []

    class Served(_Doubler):
        def _infer(self, x):  # more instances: faster here, but preferred batch 4 is slow (for the budget)
            instances, preferred = loaded[-1]
            time.sleep((0.08 if preferred == 4 else 0.02) / instances)
            return super()._infer(x)

    def load(config):
        loaded.append((config.instance_group[0].count, (list(config.dynamic_batching.preferred_batch_size) or [0])[0]))

    def sweep():
        return run_sweep(Served, [1], requests=6, duration_s=None, batch=1, height=H, width=W, progress=lambda _: None)

    points = parse_grid("1,2", "0,4", "100", max_batch=4)
    rows, best = run_search(points, _base(), load, sweep, progress=lambda _: None)
    assert len(loaded) == 4 and len(rows) == 4  # one reload and one sweep per point
    assert best["instances"] == 2 and best["preferred_batch"] == 0
    _, none = run_search(points, _base(), load, sweep, p99_budget_ms=0.001, progress=lambda _: None)
    assert none is None
    path = tmp_path / "best.pbtxt"
    write_best_config(path, _base(), best, sweep_markdown(rows))
    text = path.read_text()
    assert text.startswith("# best of the search: 2x inst, pref -") and "| config |" in text
    from google.protobuf import text_format

    parsed = text_format.Parse(text, pb2.ModelConfig())  # comments and all: a valid config.pbtxt
    assert parsed.instance_group[0].count == 2
