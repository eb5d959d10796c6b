"""Issue 29's target verdicts (benchmarks/et_targets.py) and benchmarks/executorch_targets.sh rehearsed
on the CPU with a small stand-in for the authors' folder, so the script a CPU session depends on cannot rot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.et_targets import judge, main
from dmphn_core.checkpoint import save_checkpoint
from dmphn_core.imageio import write_image
from dmphn_core.samples import sample_photo
from tests.conftest import random_model

REPO = Path(__file__).resolve().parents[2]
MACHINE = {"cpu": "Test CPU", "date": "2026-12-06 12:00 UTC", "cpu_features": {"avx512_vnni": True, "amx_int8": False}}


def _row(runtime, precision, p50, rounds, **extra):
    return {"runtime": runtime, "precision": precision, "height": 352, "width": 640, "p50_ms": p50,
            "round_p50_ms": rounds, "machine": MACHINE, **extra}


def _bench(int8_headline=4.0, int8_per_round=3.8, et_fp32_rounds=(1050.0, 1100.0)):
    return [_row("torch-ref", "fp32", 3000.0, [3000.0, 3100.0]),
            _row("ort", "fp32", 1000.0, [1000.0, 1000.0]),
            _row("et", "fp32", min(et_fp32_rounds), list(et_fp32_rounds)),
            _row("et", "int8", 750.0, [750.0, 800.0], speedup_vs_ref=int8_headline,
                 speedup_vs_ref_round_median=int8_per_round)]


def _parity(*psnrs):
    return [{"runtime": "et", "precision": "int8", "height": 352, "width": 640, "input": f"{i}.png", "psnr_db": psnr}
            for i, psnr in enumerate(psnrs)] + [{"runtime": "ort", "precision": "int8", "height": 352, "width": 640,
                                                  "input": "0.png", "psnr_db": 20.0}]


def test_targets_met_by_both_figures_are_met():
    result = judge({"b.json": _bench()}, {"p.json": _parity(41.0, 45.0)})
    assert result["all_met"] and not result["missing"]
    verdicts = {v["target"]: v for v in result["targets"]}
    assert verdicts["et fp32 / ort fp32 <= 1.10"]["figures"] == {"headline": 1.05, "per_round_median": 1.075}
    assert verdicts["et int8 >= 40 dB on every frame"]["figures"] == {"worst_frame_db": 41.0}  # ort's row ignored
    assert result["machine"] == {"cpu": "Test CPU", "date": "2026-12-06 12:00 UTC", "isa": ["avx512_vnni"]}


@pytest.mark.parametrize("bench, parity, failing", [
    (_bench(int8_headline=3.9, int8_per_round=3.2), _parity(41.0), "et int8 >= 3.5x per-patch eager"),  # headline only
    (_bench(et_fp32_rounds=(1080.0, 1200.0)), _parity(41.0), "et fp32 / ort fp32 <= 1.10"),  # per round 1.14
    (_bench(), _parity(41.0, 39.9), "et int8 >= 40 dB on every frame"),
])
def test_a_target_missed_by_either_figure_is_not_met(bench, parity, failing):
    result = judge({"b.json": bench}, {"p.json": parity})
    assert not result["all_met"]
    assert [v["target"] for v in result["targets"] if not v["met"]] == [failing]


def test_a_frame_without_psnr_or_a_target_without_rows_is_not_met():
    rows = _parity(41.0) + [{"runtime": "et", "precision": "int8", "height": 352, "width": 640, "input": "x.png",
                             "status": "error", "psnr_db": None}]
    result = judge({"b.json": _bench()}, {"p.json": rows})
    assert not result["all_met"] and not [v for v in result["targets"] if "dB" in v["target"]][0]["met"]
    only_bench = judge({"b.json": _bench()}, {})
    assert only_bench["missing"] == ["et int8 >= 40 dB on every frame"] and not only_bench["all_met"]


def test_cli_writes_strict_json_and_exits_by_verdict(tmp_path, capsys):
    bench, parity = tmp_path / "bench.json", tmp_path / "parity.json"
    bench.write_text(json.dumps(_bench()))
    parity.write_text(json.dumps(_parity(39.0)))
    assert main(["--bench", str(bench), "--parity", str(parity), "-o", str(tmp_path / "t.json")]) == 1
    out = capsys.readouterr().out
    assert "NOT met  et int8 >= 40 dB on every frame at 352x640: worst frame db 39.0 (parity.json)" in out
    assert json.loads((tmp_path / "t.json").read_text())["all_met"] is False
    assert main(["--bench", str(tmp_path / "missing.json")]) == 2
    assert capsys.readouterr().err.startswith("error: ")


@pytest.mark.slow  # exports ONNX and ExecuTorch fp32 + int8 programs at two sizes, times them (~2-4 min on 2 cores)
@pytest.mark.timeout(900)
def test_executorch_targets_script_rehearsed_on_small_frames(tmp_path):
    pytest.importorskip("executorch", reason="executorch is not installed (pip install -e '.[executorch]')")
    ref = tmp_path / "ref"
    (ref / "test_samples").mkdir(parents=True)
    for name, photo in (("a.png", "coffee.png"), ("b.png", "chelsea.png")):
        write_image(ref / "test_samples" / name, sample_photo(64, 128, photo))
    checkpoint = tmp_path / "model.pt"
    save_checkpoint(checkpoint, random_model(2, seed=3), training={"note": "executorch_targets rehearsal"})
    out = tmp_path / "out"
    env = {**os.environ, "REF": str(ref), "OUT": str(out), "WORK": str(tmp_path / "work"), "PY": sys.executable,
           "CKPT": str(checkpoint), "THREADS": "1", "ROUNDS": "2", "PAIRS": "2", "SMALL": "32x64", "RUNTIMES": "ort,et"}
    result = subprocess.run(["bash", str(REPO / "benchmarks" / "executorch_targets.sh")], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=880)
    assert result.returncode in (0, 1), result.stdout[-3000:] + result.stderr[-3000:]  # 1: a target not met
    assert sorted(p.name for p in (tmp_path / "work" / "frames-32x64").iterdir()) == ["a.png", "b.png"]
    verdicts = json.loads((out / "targets.json").read_text())
    assert verdicts["missing"] == []
    judged = {(v["target"], v["size"]) for v in verdicts["targets"]}
    for size in ("32x64", "64x128"):
        assert {("et fp32 / ort fp32 <= 1.10", size), ("et int8 >= 3.5x per-patch eager", size),
                ("et int8 >= 40 dB on every frame", size)} <= judged
    pairs = json.loads((out / "bench_32x64_pairs.json").read_text())
    assert [r["rounds"] for r in pairs if r["runtime"] == "et" and r["precision"] == "int8"] == [2]
    log = (out / "executorch_targets.log").read_text()
    assert all(f"== stage {stage}" in log for stage in ("inputs", "export", "parity", "bench", "pairs", "verdict"))
    unknown = subprocess.run(["bash", str(REPO / "benchmarks" / "executorch_targets.sh"), "nope"], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "error: unknown stage nope" in unknown.stderr
