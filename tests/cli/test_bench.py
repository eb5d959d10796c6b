"""dmphn-bench / dmphn-parity end to end on a tiny shape with every CPU runtime, in one process."""

import csv
import json

import pytest
import torch
from typer.testing import CliRunner

from cli.bench import bench_app, parity_app
from runtimes import runtime_names

cli = CliRunner()


def _strict_loads(text: str):
    """json.loads that refuses the NaN / Infinity tokens a strict parser would reject."""

    def reject(token: str):
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=reject)


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One checkpoint and one artifact folder for both commands, so each artifact (the .pt2 above
    all, ~40 s to compile) is built once: both run batch 1 at 32x64.

    DMPHN-1-2: two levels keep the per-patch reference a different computation from the static
    form (what 'vs ref' compares) at half the graph of 1-2-4-8, so AOTInductor and torch.compile
    compile about twice as fast; every hierarchy's parity is tested in tests/dmphn_core and tests/export.
    """
    from dmphn_core.checkpoint import save_checkpoint
    from tests.conftest import random_model

    folder = tmp_path_factory.mktemp("bench")
    checkpoint = folder / "m.pt"
    save_checkpoint(checkpoint, random_model(2))
    return checkpoint, folder / "artifacts"


def test_bench_all_runtimes_writes_parsable_reports(shared, tmp_path):
    checkpoint, workdir = shared
    out = {k: tmp_path / f"bench.{k}" for k in ("json", "csv", "png", "md")}
    result = cli.invoke(bench_app, [
        "-c", str(checkpoint), "--runtime", "all", "--device", "cpu", "--shape", "32x64", "--threads", "2",
        "--warmup", "1", "--iters", "3", "--workdir", str(workdir),
        "--json", str(out["json"]), "--csv", str(out["csv"]), "--plot", str(out["png"]), "--markdown", str(out["md"]),
    ])
    assert result.exit_code == 0, result.output
    rows = _strict_loads(out["json"].read_text())
    assert {r["runtime"] for r in rows} == set(runtime_names())
    by_runtime = {r["runtime"]: r for r in rows}
    # every runtime that can run on a CPU host here did run
    for key in ("torch", "torch-ref", "torchscript", "ort", "aoti", "compile"):
        row = by_runtime[key]
        assert row["status"] == "ok", row
        assert 0 < row["min_ms"] <= row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"]
        assert row["gflop"] > 0 and row["floor_ratio"] > 0 and row["images_per_s"] > 0
    assert by_runtime["trt"]["status"] == "skipped" and by_runtime["trt"]["reason"]
    reference_ms = by_runtime["torch-ref"]["p50_ms"]
    for key in ("torch", "torchscript", "ort", "aoti", "compile"):  # each against the reference timed beside it
        assert by_runtime[key]["speedup_vs_ref"] == pytest.approx(reference_ms / by_runtime[key]["p50_ms"]), key
    # every timed row says whether its spread makes it untrustworthy
    assert all(isinstance(by_runtime[key]["noisy"], bool) and by_runtime[key]["p50_over_min"] >= 1.0
               for key in ("torch", "torch-ref", "torchscript", "ort", "aoti", "compile"))
    assert "compile_s" in by_runtime["compile"] or by_runtime["compile"].get("build_s") is not None
    with out["csv"].open() as handle:
        assert {r["runtime"] for r in csv.DictReader(handle)} == set(runtime_names())
    assert out["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| runner |" in out["md"].read_text()


def test_parity_all_runtimes_pass_at_fp32(shared, tmp_path):
    checkpoint, workdir = shared
    json_path = tmp_path / "parity.json"
    result = cli.invoke(parity_app, [
        "-c", str(checkpoint), "--runtime", "all", "--device", "cpu", "--shape", "32x64", "--threads", "2",
        "--workdir", str(workdir), "--json", str(json_path),
    ])
    assert result.exit_code == 0, result.output
    rows = _strict_loads(json_path.read_text())  # identical outputs have PSNR inf: written as null
    ran = [r for r in rows if r["status"] in ("pass", "fail")]
    assert {r["runtime"] for r in ran} >= {"torch", "torch-ref", "torchscript", "ort", "aoti", "compile"}
    assert all(r["status"] == "pass" and r["max_abs"] <= 1e-4 for r in ran)
    assert {r["input"] for r in ran} == {"random(seed=0)", "photo"}


def test_parity_at_batch_2(shared, tmp_path):
    """A batch of two: each image of the batch is compared (cheap runtimes only; artifacts per batch)."""
    checkpoint, _ = shared
    json_path = tmp_path / "parity.json"
    result = cli.invoke(parity_app, [
        "-c", str(checkpoint), "--runtime", "torch,ort", "--device", "cpu", "--shape", "32x64", "--batch", "2",
        "--threads", "1", "--workdir", str(tmp_path / "artifacts"), "--json", str(json_path),
    ])
    assert result.exit_code == 0, result.output
    rows = _strict_loads(json_path.read_text())
    assert {r["runtime"] for r in rows} == {"torch", "ort"} and all(r["batch"] == 2 for r in rows)
    assert all(r["status"] == "pass" for r in rows)


def test_named_unavailable_runtime_is_a_one_line_error():
    if torch.cuda.is_available():
        pytest.skip("CUDA is present: TensorRT may be available here")
    result = cli.invoke(bench_app, ["--runtime", "trt", "--device", "cpu"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: trt-cpu-fp32 cannot run here")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--runtime", "tflite"], "unknown runtime"),
        (["--shape", "65x64", "--runtime", "torch"], "needs H a multiple of 8"),
        (["--shape", "big", "--runtime", "torch"], "HEIGHTxWIDTH"),
        (["--iters", "0", "--runtime", "torch"], "--iters"),
        (["--device", "tpu"], "unknown device"),
    ],
)
def test_bad_options_are_one_line_errors(args, message, make_checkpoint):
    device = [] if "--device" in args else ["--device", "cpu"]
    result = cli.invoke(bench_app, ["-c", str(make_checkpoint(4)), *device, *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output


def test_missing_checkpoint_is_a_one_line_error(tmp_path):
    result = cli.invoke(parity_app, ["-c", str(tmp_path / "none.pt"), "--runtime", "torch", "--device", "cpu"])
    assert result.exit_code == 2 and "checkpoint not found" in result.stderr
