"""Reports: noisy rows are flagged, one-patch models get no 'vs ref', JSON is strict."""

from __future__ import annotations

import json
import math

import pytest

from benchmarks.report import add_speedups, bench_markdown, noise_warning, write_json


def _row(runtime: str, p50: float, min_ms: float | None = None, p90: float | None = None, levels: int = 4) -> dict:
    return {
        "runtime": runtime, "runner": f"{runtime}-cpu-fp32", "device": "cpu", "precision": "fp32", "batch": 1,
        "height": 32, "width": 64, "model": f"DMPHN-{levels}", "levels": levels, "status": "ok",
        "p50_ms": p50, "mean_ms": p50, "p90_ms": p90 or p50 * 1.05, "p99_ms": p90 or p50 * 1.05,
        "min_ms": min_ms or p50 * 0.97, "machine": {"cpu": "test", "date": "2026-11-25"},
    }


def _strict_loads(text: str):
    def reject(token: str):
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=reject)


def test_steady_rows_are_not_flagged_and_get_a_ratio():
    rows = [_row("torch-ref", 100.0), _row("ort", 50.0)]
    add_speedups(rows)
    assert [r["noisy"] for r in rows] == [False, False]
    assert rows[1]["speedup_vs_ref"] == pytest.approx(2.0)
    assert noise_warning(rows) is None
    assert "noisy" not in bench_markdown(rows).split("\n\n")[1]  # the table, not the notes


@pytest.mark.parametrize(("min_ms", "p90"), [(646.0, None), (None, 6000.0)])
def test_large_spread_is_flagged_in_table_json_and_warning(min_ms, p90, tmp_path):
    # the case from issue 17: p50 4375 ms but min 646 ms on a loaded machine
    rows = [_row("torch-ref", 570.0), _row("torch", 4375.0, min_ms=min_ms, p90=p90)]
    add_speedups(rows)
    assert rows[1]["noisy"] and not rows[0]["noisy"]
    table = bench_markdown(rows)
    assert "**noisy**" in next(line for line in table.splitlines() if line.startswith("| torch-cpu-fp32"))
    warning = noise_warning(rows)
    assert warning.startswith("warning: 1 row(s)") and "torch-cpu-fp32" in warning
    write_json(tmp_path / "b.json", rows)
    assert [r["noisy"] for r in _strict_loads((tmp_path / "b.json").read_text())] == [False, True]


def test_one_level_model_has_no_vs_ref_ratio():
    rows = [_row("torch-ref", 100.0, levels=1), _row("torch", 120.0, levels=1)]
    add_speedups(rows)
    assert all(r["speedup_vs_ref"] is None and "same computation" in r["speedup_vs_ref_note"] for r in rows)
    table = bench_markdown(rows)
    assert all("| n/a |" in line for line in table.splitlines() if line.startswith("| torch"))
    assert "same computation" in table


def test_json_has_no_bare_infinity(tmp_path):
    rows = [{**_row("torch", 10.0), "psnr_db": math.inf, "max_abs": math.nan}]
    write_json(tmp_path / "r.json", rows)
    parsed = _strict_loads((tmp_path / "r.json").read_text())
    assert parsed[0]["psnr_db"] is None and parsed[0]["max_abs"] is None


def _shaped_row(runtime, p50_ms, *, height=64, precision="fp32", status="ok"):
    return {**_row(runtime, p50_ms), "height": height, "precision": precision, "status": status}


def test_speedup_is_reference_time_over_own_time_per_shape():
    rows = [_shaped_row("torch-ref", 40.0), _shaped_row("torch", 10.0), _shaped_row("ort", 80.0),
            _shaped_row("torch-ref", 100.0, height=128), _shaped_row("torch", 20.0, height=128),
            _shaped_row("torch", 5.0, precision="bf16")]
    add_speedups(rows)
    assert [row["speedup_vs_ref"] for row in rows] == pytest.approx([1.0, 4.0, 0.5, 1.0, 5.0, 8.0])


def test_the_ratio_is_also_taken_round_by_round_where_the_rounds_match():
    # drifting load: the reference's best round (1) and the row's best (2) are different rounds
    reference = {**_row("torch-ref", 100.0), "round_p50_ms": [100.0, 140.0, 120.0], "round_spread": 1.4}
    row = {**_row("et", 35.0), "round_p50_ms": [50.0, 35.0, 60.0], "round_spread": 1.71}
    other_rounds = {**_row("ort", 50.0), "round_p50_ms": [50.0, 60.0], "round_spread": 1.2}  # not the same rounds
    rows = [reference, row, other_rounds]
    add_speedups(rows)
    assert row["speedup_vs_ref"] == pytest.approx(100.0 / 35.0)
    assert row["speedup_vs_ref_rounds"] == pytest.approx([2.0, 4.0, 2.0])
    assert row["speedup_vs_ref_round_median"] == pytest.approx(2.0)
    assert reference["speedup_vs_ref_round_median"] == pytest.approx(1.0)
    assert "speedup_vs_ref_rounds" not in other_rounds and other_rounds["speedup_vs_ref"] == pytest.approx(2.0)
    table = bench_markdown(rows)
    line = next(line for line in table.splitlines() if line.startswith("| et-cpu-fp32"))
    assert "| 2.86× (2.00×) |" in line
    assert "| 2.00× |" in next(line for line in table.splitlines() if line.startswith("| ort-cpu-fp32"))
    assert "round by round" in table


def test_no_speedup_without_a_measured_reference_or_for_failed_rows():
    rows = [_shaped_row("torch-ref", 40.0, status="skipped"), _shaped_row("torch", 10.0),
            _shaped_row("torch-ref", 40.0, height=128), _shaped_row("ort", 10.0, height=128, status="error")]
    add_speedups(rows)
    assert [("speedup_vs_ref" in row) for row in rows] == [False, False, True, False]


def test_jsonl_appends_one_strict_line_per_row_and_latest_rows_keeps_the_last(tmp_path):
    from benchmarks.report import append_jsonl, latest_rows

    path = tmp_path / "rows.jsonl"
    partial = {**_row("torch", 12.0), "status": "partial", "rounds": 1, "rounds_planned": 3, "psnr_db": math.inf}
    for row in (partial, _row("ort", 20.0), {**_row("torch", 11.0), "status": "ok"}):
        append_jsonl(path, row)
    lines = path.read_text().splitlines()
    parsed = [_strict_loads(line) for line in lines]
    assert len(lines) == 3 and parsed[0]["psnr_db"] is None
    latest = latest_rows(parsed)
    assert [(r["runtime"], r["status"], r["p50_ms"]) for r in latest] == [("torch", "ok", 11.0), ("ort", "ok", 20.0)]


def test_markdown_shows_partial_rows_rounds_that_disagree_and_the_load():
    rows = [
        {**_row("torch-ref", 100.0), "round_p50_ms": [100.0, 140.0], "round_spread": 1.4, "rounds_disagree": True,
         "load_1min": [[0.5, 2.6], [2.6, 2.9]], "load_high": True, "threads": 2},
        {**_row("ort", 50.0), "status": "partial", "rounds": 1, "rounds_planned": 3, "round_p50_ms": [50.0],
         "round_spread": 1.0},
    ]
    add_speedups(rows)
    table = bench_markdown(rows)
    ref_line = next(line for line in table.splitlines() if line.startswith("| torch-ref"))
    assert "100.0 / 140.0 (1.40)" in ref_line and "**rounds disagree** (1.40)" in ref_line
    assert "partial: 1 of 3 rounds" in next(line for line in table.splitlines() if line.startswith("| ort"))
    assert "0.50→2.60; 2.60→2.90 (above the 2 thread(s)" in table
    warning = noise_warning(rows)
    assert "rounds disagree" in warning and "torch-ref-cpu-fp32 32x64 (1.40)" in warning and "above the 2" in warning
