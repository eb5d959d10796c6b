"""benchmarks/gpu_session.sh rehearsed on the CPU (DEVICE=cpu, 32x64 frames), so the script a GPU
lease depends on cannot rot between leases: stage names checked up front, the deadline, rows
appended as each variant ends, and a stage cut by its cap keeping every row before it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dmphn_core.checkpoint import save_checkpoint
from dmphn_core.imageio import image_to_tensor, read_image, tensor_to_image, write_image
from dmphn_core.samples import sample_photo
from tests.conftest import random_model

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_session.sh"


def _strict_lines(path: Path) -> list[dict]:
    def reject(token: str):
        raise ValueError(f"not strict JSON: {token}")

    return [json.loads(line, parse_constant=reject) for line in path.read_text().splitlines()]


@pytest.fixture
def reference(tmp_path: Path) -> tuple[Path, Path]:
    """A stand-in for the authors' folder: two 32x64 frames and what the checkpoint makes of them."""
    model = random_model(1, seed=5)
    checkpoint = tmp_path / "model.pt"
    save_checkpoint(checkpoint, model, training={"note": "gpu_session rehearsal"})
    ref = tmp_path / "ref"
    frames, published = ref / "test_samples", ref / "test_results" / "DMPHN_1_2_4_8_test_res"
    frames.mkdir(parents=True)
    published.mkdir(parents=True)
    for name, photo in (("a.png", "coffee.png"), ("b.png", "chelsea.png")):
        write_image(frames / name, sample_photo(32, 64, photo))
        with __import__("torch").inference_mode():
            out = model(image_to_tensor(read_image(frames / name)))
        write_image(published / name, tensor_to_image(out))
    return ref, checkpoint


def run_session(tmp_path: Path, ref: Path, checkpoint: Path, *stages: str, timeout: int = 600, **env: str):
    environment = {
        **os.environ, "OUT": str(tmp_path / "out"), "REF": str(ref), "WORK": str(tmp_path / "work"),
        "CKPT": str(checkpoint), "PY": sys.executable, "DEVICE": "cpu", "RUNTIME": "torch", "PRECISION": "fp32",
        "WARMUP": "0", "ITERS": "1", "PROFILE_ITERS": "1", "BATCHES": "2", **env,
    }
    return subprocess.run(["bash", str(SCRIPT), *stages], cwd=REPO, env=environment, capture_output=True, text=True,
                          timeout=timeout)


def test_gpu_session_unknown_stage_stops_before_anything_runs(tmp_path):
    result = run_session(tmp_path, tmp_path, tmp_path / "none.pt", "facts", "bencch")
    assert result.returncode == 2
    assert result.stderr.startswith("error: unknown stage 'bencch'; stages: assets facts baseline")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()  # nothing ran, nothing was written
    bad_cap = run_session(tmp_path, tmp_path, tmp_path / "none.pt", "facts", CAPS="facts=soon")
    assert bad_cap.returncode == 2 and bad_cap.stderr.startswith("error: CAPS entry 'facts=soon'")


def test_gpu_session_deadline_skips_what_is_left(tmp_path):
    result = run_session(tmp_path, tmp_path, tmp_path / "none.pt", "assets", "baseline", DEADLINE="5")
    assert result.returncode == 0, result.stderr
    stages = _strict_lines(tmp_path / "out" / "stages.jsonl")
    assert [(s["stage"], s["status"]) for s in stages] == [("assets", "skipped"), ("baseline", "skipped")]
    assert all(s["reason"].startswith("deadline:") for s in stages)


def test_gpu_session_rehearsal_keeps_the_rows_before_a_timed_out_stage(tmp_path, reference):
    """baseline writes its rows and its kernel table; channels_last is cut at a 1 s cap (a variant
    needs longer: torch's import and the >= 1 s matmul-rate probe) and the rows stay."""
    ref, checkpoint = reference
    result = run_session(tmp_path, ref, checkpoint, "assets", "baseline", "channels_last", CAPS="channels_last=1")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = tmp_path / "out"
    stages = {s["stage"]: s for s in _strict_lines(out / "stages.jsonl")}
    assert [stages[name]["status"] for name in ("assets", "baseline", "channels_last")] == ["ok", "ok", "timeout"]
    assert stages["channels_last"]["cap_s"] == 1
    rows = _strict_lines(out / "rows.jsonl")
    assert [(r["stage"], r["variant"], r["status"]) for r in rows] == [("baseline", "torch", "ok")]
    assert rows[0]["options"] == "--runtime torch --precision fp32" and rows[0]["p50_ms"] > 0
    table = (out / "profile_torch-cpu-fp32.txt").read_text()
    assert "convolution" in table  # the kernel-level table names the ops the time went to
    summary = json.loads((out / "profile_torch-cpu-fp32.json").read_text())
    assert summary["top"] and abs(sum(k["share"] for k in summary["top"]) - 1) < 0.2


@pytest.mark.slow  # every default stage, each variant its own process, AOTInductor compiled on 2 cores (~3-5 min)
@pytest.mark.timeout(2000)
def test_gpu_session_default_stages_rehearsed_on_cpu(tmp_path, reference):
    ref, checkpoint = reference
    # the AOTInductor compile alone took over 3 min on 2 busy cores (load 19): its cap is raised here
    result = run_session(tmp_path, ref, checkpoint, timeout=1900, DEADLINE="1800", CAPS="aoti=900")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = tmp_path / "out"
    stages = {s["stage"]: s for s in _strict_lines(out / "stages.jsonl")}
    assert list(stages) == ["assets", "facts", "baseline", "cudnn", "channels_last", "cuda_graphs", "batch", "parity",
                            "max_autotune", "aoti"]
    skipped = {name for name, s in stages.items() if s["status"] == "skipped"}
    assert skipped == {"cuda_graphs", "max_autotune"}, stages  # CUDA-only, compile-only
    assert all(s["status"] == "ok" for name, s in stages.items() if name not in skipped), stages
    rows = _strict_lines(out / "rows.jsonl")
    by_variant = {r["variant"]: r for r in rows}
    assert by_variant["torch+cudnn"]["cudnn_benchmark"] is True
    assert by_variant["torch+nhwc"]["runner"] == "torch+nhwc-cpu-fp32"
    assert by_variant["best@b2"]["batch"] == 2 and by_variant["best@b2"]["images_per_s"] > 0
    assert by_variant["aoti"]["runtime"] == "aoti" and by_variant["aoti"]["status"] == "ok"
    assert by_variant["aoti"]["build_s"] is None  # the package built by the first process, only loaded in this one
    parity = json.loads((out / "parity_best.json").read_text())
    assert parity and all(row["status"] == "pass" for row in parity)
