"""Report helpers: speed-ups against the per-patch reference measured in the same run."""

import pytest

from benchmarks.report import add_speedups


def _row(runtime, p50_ms, *, height=64, precision="fp32", status="ok"):
    return {"runtime": runtime, "device": "cpu", "batch": 1, "height": height, "width": 128,
            "precision": precision, "status": status, "p50_ms": p50_ms}


def test_speedup_is_reference_time_over_own_time_per_shape():
    rows = [_row("torch-ref", 40.0), _row("torch", 10.0), _row("ort", 80.0),
            _row("torch-ref", 100.0, height=128), _row("torch", 20.0, height=128),
            _row("torch", 5.0, precision="bf16")]
    add_speedups(rows)
    assert [row["speedup_vs_ref"] for row in rows] == pytest.approx([1.0, 4.0, 0.5, 1.0, 5.0, 8.0])


def test_no_speedup_without_a_measured_reference_or_for_failed_rows():
    rows = [_row("torch-ref", 40.0, status="skipped"), _row("torch", 10.0),
            _row("torch-ref", 40.0, height=128), _row("ort", 10.0, height=128, status="error")]
    add_speedups(rows)
    assert [("speedup_vs_ref" in row) for row in rows] == [False, False, True, False]
