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
def shared(aoti_package, tmp_path_factory):
    """One checkpoint and one artifact folder for both commands, so each artifact is built once:
    both run batch 1 at 32x64.

    The checkpoint is the run's shared AOTInductor package's (conftest ``aoti_package``: DMPHN-1-2,
    seed 21, 32x64, dynamic batch, made and verified by ``dmphn-export aoti``), and that package is
    put in the work folder's artifact store as the entry the benchmark would build (the store hashes
    it like any entry): a second compile (~40 s) would make the same graph. DMPHN-1-2: two levels
    keep the per-patch reference a different computation from the static form (what 'vs ref'
    compares) at half the graph of 1-2-4-8, so torch.compile compiles about twice as fast; every hierarchy's parity is tested in
    tests/dmphn_core and tests/export.
    """
    from tests.conftest import aoti_checkpoint, seed_work_folder

    package, _ = aoti_package
    checkpoint = aoti_checkpoint(package)
    workdir = tmp_path_factory.mktemp("bench") / "artifacts"
    seed_work_folder(workdir, checkpoint, package, "aoti", 1, 32, 64, "cpu", "fp32")
    return checkpoint, workdir


@pytest.mark.slow  # compiles torch.compile and needs the run's AOTInductor package (30-70 s on 2 cores)
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


@pytest.mark.slow  # compiles torch.compile and needs the run's AOTInductor package
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


def test_parity_at_batch_2(make_checkpoint, tmp_path):
    """A batch of two: each image of the batch is compared (cheap runtimes only; artifacts per batch)."""
    checkpoint = make_checkpoint(2)
    json_path = tmp_path / "parity.json"
    result = cli.invoke(parity_app, [
        "-c", str(checkpoint), "--runtime", "torch,ort", "--device", "cpu", "--shape", "32x64", "--batch", "2",
        "--threads", "1", "--workdir", str(tmp_path / "artifacts"), "--json", str(json_path),
    ])
    assert result.exit_code == 0, result.output
    rows = _strict_loads(json_path.read_text())
    assert {r["runtime"] for r in rows} == {"torch", "ort"} and all(r["batch"] == 2 for r in rows)
    assert all(r["status"] == "pass" for r in rows)


def test_throughput_mode_adds_rows_beside_the_latency_rows(make_checkpoint, tmp_path):
    json_path = tmp_path / "bench.json"
    result = cli.invoke(bench_app, [
        "-c", str(make_checkpoint("1-2")), "--runtime", "ort", "--device", "cpu", "--shape", "32x64",
        "--iters", "2", "--warmup", "1", "--mode", "throughput", "--frames", "6", "--streams", "2",
        "--workdir", str(tmp_path / "artifacts"), "--json", str(json_path),
    ])
    assert result.exit_code == 0, result.output
    rows = _strict_loads(json_path.read_text())
    latency = [r for r in rows if r.get("mode") != "throughput"]
    stream = [r for r in rows if r.get("mode") == "throughput"]
    assert len(latency) == len(stream) == 1 and stream[0]["status"] == "ok"
    assert stream[0]["frames"] == 6 and stream[0]["streams"] == 2 and stream[0]["frames_per_s"] > 0
    assert stream[0]["latency_frames_per_s"] == pytest.approx(1e3 / latency[0]["p50_ms"])
    assert "throughput frames/s" in result.output


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
        (["--rounds", "0", "--runtime", "torch"], "--rounds"),
        (["--device", "tpu"], "unknown device"),
        (["--mode", "fast", "--runtime", "torch"], "latency or throughput"),
        (["--mode", "throughput", "--frames", "0", "--runtime", "torch"], "--frames"),
    ],
)
def test_bad_options_are_one_line_errors(args, message, make_checkpoint):
    device = [] if "--device" in args else ["--device", "cpu"]
    result = cli.invoke(bench_app, ["-c", str(make_checkpoint(4)), *device, *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output


def test_cudnn_benchmark_and_layout_options_reach_the_runs(make_checkpoint, tmp_path, monkeypatch):
    """--cudnn-benchmark is on while the runtimes run (and recorded in each row), off again after;
    --channels-last and --freezing become runner options, named in the row's runner label."""
    import benchmarks.bench

    seen = []
    real = benchmarks.bench.time_calls

    def spy(runner, *args, **kwargs):
        seen.append((torch.backends.cudnn.benchmark, runner.channels_last))
        return real(runner, *args, **kwargs)

    monkeypatch.setattr(benchmarks.bench, "time_calls", spy)
    before = torch.backends.cudnn.benchmark
    json_path = tmp_path / "bench.json"
    result = cli.invoke(bench_app, [
        "-c", str(make_checkpoint(1)), "--runtime", "torch", "--device", "cpu", "--shape", "32x64", "--iters", "1",
        "--warmup", "0", "--rounds", "1", "--cudnn-benchmark", "--channels-last", "--freezing", "--json", str(json_path),
    ])
    assert result.exit_code == 0, result.output
    assert seen == [(True, True)] and torch.backends.cudnn.benchmark == before
    (row,) = _strict_loads(json_path.read_text())
    assert row["cudnn_benchmark"] is True and row["runner"] == "torch+nhwc-cpu-fp32"


def test_unknown_compile_mode_is_a_one_line_error(make_checkpoint):
    result = cli.invoke(bench_app, ["-c", str(make_checkpoint(1)), "--runtime", "compile", "--device", "cpu",
                                    "--compile-mode", "turbo"])
    assert result.exit_code == 2 and "max-autotune-no-cudagraphs" in result.stderr


def test_missing_checkpoint_is_a_one_line_error(tmp_path):
    result = cli.invoke(parity_app, ["-c", str(tmp_path / "none.pt"), "--runtime", "torch", "--device", "cpu"])
    assert result.exit_code == 2 and "checkpoint not found" in result.stderr


# -- real frames and expected outputs (--inputs / --expected) ----------------------------


@pytest.fixture
def frames_and_expected(tmp_path):
    """Two 32x64 frames, a random-weight checkpoint, and what PyTorch makes of them as 8-bit PNGs."""
    from dmphn_core.checkpoint import save_checkpoint
    from dmphn_core.imageio import image_to_tensor, read_image, tensor_to_image, write_image
    from dmphn_core.samples import sample_photo
    from tests.conftest import random_model

    model = random_model(2, seed=3)
    checkpoint = tmp_path / "m.pt"
    save_checkpoint(checkpoint, model, training={"untrained": True, "seed": 3})
    inputs, expected = tmp_path / "in", tmp_path / "expected"
    inputs.mkdir()
    expected.mkdir()
    for name, photo in (("a.png", "coffee.png"), ("b.png", "chelsea.png")):
        write_image(inputs / name, sample_photo(32, 64, photo))
        with torch.inference_mode():
            write_image(expected / name, tensor_to_image(model(image_to_tensor(read_image(inputs / name)))))
    return checkpoint, inputs, expected


def test_parity_on_frames_checks_runtimes_against_expected_outputs(frames_and_expected, tmp_path):
    checkpoint, inputs, expected = frames_and_expected
    json_path, md_path = tmp_path / "parity.json", tmp_path / "parity.md"
    result = cli.invoke(parity_app, [
        "-c", str(checkpoint), "--runtime", "torch,ort", "--device", "cpu", "--inputs", str(inputs),
        "--expected", str(expected), "--workdir", str(tmp_path / "w"), "--json", str(json_path), "--markdown", str(md_path),
    ])
    assert result.exit_code == 0, result.output
    text = json_path.read_text()
    assert "Infinity" not in text and "NaN" not in text
    rows = json.loads(text)
    assert {(r["runtime"], r["input"], r["against"]) for r in rows} == {
        (rt, name, against) for rt in ("torch", "ort") for name in ("a.png", "b.png") for against in ("pytorch-fp32", "expected")
    }
    assert all(r["status"] == "pass" and r["height"] == 32 and r["width"] == 64 for r in rows)
    assert all(r["weights"] == "untrained DMPHN-1-2 (seed 3)" for r in rows)
    # expected files are rounded to 8 bits: within half a step, so PSNR well above 50 dB but not exact
    assert all(0 < r["max_abs"] <= 0.5 / 255 + 1e-6 for r in rows if r["against"] == "expected")
    assert "a.png vs expected" in md_path.read_text() and "Weights: untrained DMPHN-1-2" in md_path.read_text()


def test_parity_on_frames_fails_when_outputs_differ(frames_and_expected, tmp_path):
    checkpoint, inputs, expected = frames_and_expected
    (expected / "b.png").write_bytes((inputs / "b.png").read_bytes())  # the blurred frame is not the output
    result = cli.invoke(parity_app, [
        "-c", str(checkpoint), "--runtime", "torch", "--device", "cpu", "--inputs", str(inputs),
        "--expected", str(expected), "--expected-min-psnr", "55", "--workdir", str(tmp_path / "w"),
        "--json", str(tmp_path / "p.json"),
    ])
    assert result.exit_code == 1
    failed = [r for r in json.loads((tmp_path / "p.json").read_text()) if r["status"] == "fail"]
    assert [(r["input"], r["against"]) for r in failed] == [("b.png", "expected")]


def test_reduced_precision_meets_expected_outputs_at_its_own_bar(frames_and_expected, tmp_path):
    """bf16's error against fp32 adds to the port's: against the expected files a bf16 row is held
    to bf16's own PSNR bar when --expected-min-psnr is higher (H200, 2026-11-26: the authors'
    outputs at 47.6-48.4 dB in bf16, 52.5-53.4 dB in fp32)."""
    checkpoint, inputs, expected = frames_and_expected
    result = cli.invoke(parity_app, [
        "-c", str(checkpoint), "--runtime", "torch", "--precision", "fp32,bf16", "--device", "cpu",
        "--allow-emulated",  # tiny frames: emulated bf16 (a CPU without bf16 instructions) is quick enough
        "--inputs", str(inputs), "--expected", str(expected), "--expected-min-psnr", "60",
        "--workdir", str(tmp_path / "w"), "--json", str(tmp_path / "p.json"),
    ])
    rows = [r for r in json.loads((tmp_path / "p.json").read_text()) if r["against"] == "expected"]
    assert {r["precision"]: r["tolerance"] for r in rows} == {"fp32": "psnr>=60dB", "bf16": "psnr>=42dB"}, result.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--expected", "{expected}"], "--expected needs --inputs"),
        (["--inputs", "{expected}", "--expected", "{missing}"], "is not a folder"),
    ],
)
def test_parity_frame_options_are_checked(frames_and_expected, tmp_path, extra, message):
    checkpoint, _, expected = frames_and_expected
    args = [a.format(expected=expected, missing=tmp_path / "missing") for a in extra]
    result = cli.invoke(parity_app, ["-c", str(checkpoint), "--runtime", "torch", "--device", "cpu", *args])
    assert result.exit_code == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_bench_on_frames_records_input_and_weights(frames_and_expected, tmp_path):
    checkpoint, inputs, _ = frames_and_expected
    json_path = tmp_path / "bench.json"
    result = cli.invoke(bench_app, [
        "-c", str(checkpoint), "--runtime", "torch", "--device", "cpu", "--inputs", str(inputs), "--batch", "3",
        "--warmup", "0", "--iters", "1", "--peak-tflops", "1", "--json", str(json_path),
    ])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(json_path.read_text())
    assert (row["height"], row["width"], row["batch"]) == (32, 64, 3) and row["status"] == "ok"
    assert row["input"] == f"frames of {inputs}" and row["weights"] == "untrained DMPHN-1-2 (seed 3)"


def test_record_writes_a_table_auto_reads_for_this_machine(make_checkpoint, tmp_path):
    from dmphn_core.checkpoint import load_checkpoint
    from export.cache import model_digest
    from export.speed_table import TableKey, measured_speeds, speed_table_dir

    checkpoint = make_checkpoint(1)
    result = cli.invoke(bench_app, ["-c", str(checkpoint), "--runtime", "torch,torch-ref,trt", "--device", "cpu",
                                    "--shape", "32x64", "--threads", "1", "--warmup", "0", "--iters", "2",
                                    "--record", "--cache", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "recorded measured speeds: " in result.stdout
    key = TableKey.here(model_digest(load_checkpoint(checkpoint).build_model()), 32, 64, "cpu", threads=1)
    speeds = measured_speeds(key, speed_table_dir(tmp_path))
    assert set(speeds) == {("torch", "fp32"), ("torch-ref", "fp32")}  # the skipped trt row is not recorded
    assert all(ms > 0 for ms in speeds.values())


def test_jsonl_streams_rows_and_an_interrupted_run_still_writes_its_reports(make_checkpoint, tmp_path, monkeypatch):
    """--jsonl gets the skipped row at once and a partial row per round; a run stopped in its second
    round (Ctrl-C, or SIGTERM from `timeout`) exits 130 and its JSON and markdown hold what finished."""
    import benchmarks.bench as bench

    real, calls = bench.time_calls, []

    def stopped_in_round_two(runner, x, iters):
        calls.append(runner.name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(runner, x, iters)

    monkeypatch.setattr(bench, "time_calls", stopped_in_round_two)
    out = {k: tmp_path / f"bench.{k}" for k in ("jsonl", "json", "md")}
    out["jsonl"].write_text('{"earlier": "run"}\n')  # appended to, not replaced
    result = cli.invoke(bench_app, [
        "-c", str(make_checkpoint(1)), "--runtime", "torch,trt", "--device", "cpu", "--shape", "32x64",
        "--threads", "1", "--warmup", "0", "--iters", "1", "--rounds", "3", "--workdir", str(tmp_path / "w"),
        "--jsonl", str(out["jsonl"]), "--json", str(out["json"]), "--markdown", str(out["md"]),
    ])
    assert result.exit_code == 130 and "interrupted" in result.stderr, result.output
    lines = [_strict_loads(line) for line in out["jsonl"].read_text().splitlines()]
    assert [(r.get("runtime"), r.get("status")) for r in lines] == [(None, None), ("trt", "skipped"), ("torch", "partial")]
    assert lines[2]["rounds"] == 1 and lines[2]["rounds_planned"] == 3 and lines[2]["p50_ms"] > 0
    rows = _strict_loads(out["json"].read_text())
    assert [(r["runtime"], r["status"]) for r in rows] == [("trt", "skipped"), ("torch", "partial")]
    assert "partial: 1 of 3 rounds" in out["md"].read_text()


def test_prepare_only_builds_artifacts_so_the_timed_run_only_times(make_checkpoint, tmp_path):
    common = ["-c", str(make_checkpoint(1)), "--runtime", "ort", "--device", "cpu", "--shape", "32x64",
              "--threads", "1", "--workdir", str(tmp_path / "w")]
    result = cli.invoke(bench_app, [*common, "--prepare-only"])
    assert result.exit_code == 0 and "ready ort-cpu-fp32 batch 1 32x64 (built in" in result.output, result.output
    assert len(list((tmp_path / "w").glob("*/onnx_cpu_fp32_b1_32x64_*.onnx"))) == 1
    json_path = tmp_path / "b.json"
    result = cli.invoke(bench_app, [*common, "--warmup", "0", "--iters", "1", "--rounds", "1", "--json", str(json_path)])
    (row,) = _strict_loads(json_path.read_text())
    assert result.exit_code == 0 and row["status"] == "ok" and row["build_s"] is None  # found, not rebuilt
    assert cli.invoke(bench_app, [*common[:-2], "--prepare-only"]).exit_code == 2  # needs --workdir
