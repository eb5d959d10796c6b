"""--runtime auto / --precision auto --min-psnr: the fastest (runtime, precision) verified to meet the floor."""

import json

import numpy as np
import pytest

from dmphn_core.checkpoint import load_checkpoint
from dmphn_core.errors import DMPHNError
from dmphn_core.precision import PRECISIONS
from export import auto as auto_module
from export.auto import AutoRequest, AutoRunner, Candidate, auto_candidates, by_speed, choose, runner_for_request
from export.cache import ArtifactStore, file_hashes, model_digest
from export.exporter import exporter_for
from runtimes import runner_class
from runtimes.torch_eager import TorchRunner
from tests.conftest import photo_batch, random_model

H, W = 32, 64
SHAPE = (1, 3, H, W)
ORT_INT8, ORT_FP32 = Candidate("ort", "int8", (2, 8)), Candidate("ort", "fp32", (2, 32))


def _seed_entry(store: ArtifactStore, digest: str, precision: str, psnr_db: float | None) -> None:
    """A trustworthy-looking ONNX entry whose record says it verified at ``psnr_db`` (no export)."""
    path = store.path(digest, "onnx", 1, H, W, "cpu", precision)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(f"stand-in {precision} graph".encode())
    path.with_name(path.name + ".verified.json").write_text(
        json.dumps({"files": file_hashes(path, "onnx"), "verified_psnr_db": psnr_db}))


@pytest.fixture
def seeded(tmp_path, monkeypatch):
    """A store with ort int8 verified at 38 dB and ort fp32 (identical), and only those two candidates."""
    model = random_model(1)
    store, digest = ArtifactStore(tmp_path), model_digest(model)
    _seed_entry(store, digest, "int8", 38.0)
    _seed_entry(store, digest, "fp32", None)
    monkeypatch.setattr(auto_module, "auto_candidates", lambda device, request: (
        [c for c in (ORT_INT8, ORT_FP32) if c.precision in request.precisions], []))
    return store, model, digest


def test_the_floor_is_never_undercut(seeded):
    store, model, digest = seeded
    choice, built = choose(store, model, digest, SHAPE, "cpu", AutoRequest(precision="auto", min_psnr=40.0), {})
    assert (choice.runtime, choice.precision) == ("ort", "fp32") and not built
    assert "passed over: ort int8: 38.0 dB < 40" in choice.reason


def test_a_lower_floor_takes_the_faster_precision_and_names_its_db(seeded):
    store, model, digest = seeded
    choice, _ = choose(store, model, digest, SHAPE, "cpu", AutoRequest(precision="auto", min_psnr=35.0), {})
    assert (choice.runtime, choice.precision) == ("ort", "int8")
    assert choice.reason.startswith(f"runtime: ort on cpu/int8 for {H}x{W} (")
    assert "38.0 dB vs fp32" in choice.reason and ">= --min-psnr 35" in choice.reason
    assert "declared order" in choice.reason  # no table measured here


def test_a_measured_table_outranks_the_declared_order(seeded):
    store, model, digest = seeded
    speeds = {("ort", "fp32"): 10.0, ("ort", "int8"): 20.0}  # int8 measured slower on this machine
    choice, _ = choose(store, model, digest, SHAPE, "cpu", AutoRequest(precision="auto", min_psnr=35.0), speeds)
    assert choice.precision == "fp32" and "p50 10 ms measured here" in choice.reason


def test_no_floor_means_fp32(seeded):
    store, model, digest = seeded
    choice, _ = choose(store, model, digest, SHAPE, "cpu", AutoRequest(precision="auto"), {})
    assert choice.precision == "fp32"


def test_nothing_verified_falls_back_to_per_patch_pytorch(tmp_path, monkeypatch):
    monkeypatch.setattr(auto_module, "auto_candidates", lambda device, request: ([], ["ov int8: not installed"]))
    model = random_model(1)
    choice, _ = choose(ArtifactStore(tmp_path), model, model_digest(model), SHAPE, "cpu", AutoRequest(), {})
    assert (choice.runtime, choice.artifact) == ("torch-ref", None) and "ov int8: not installed" in choice.reason


def test_candidates_come_from_the_runner_classes():
    candidates, _ = auto_candidates("cpu", AutoRequest(precision="auto", min_psnr=40.0))
    for candidate in candidates:
        cls = runner_class(candidate.runtime)
        assert "cpu" in cls.auto_rank and candidate.precision in cls.precisions
        assert candidate.precision in exporter_for(cls.artifact_format).precisions
    fp32_only, _ = auto_candidates("cpu", AutoRequest())
    assert {c.precision for c in fp32_only} <= {"fp32"}
    assert by_speed([ORT_FP32, ORT_INT8], {}) == [ORT_INT8, ORT_FP32]
    assert by_speed([ORT_INT8, ORT_FP32], {("ort", "fp32"): 1.0}) == [ORT_FP32, ORT_INT8]


@pytest.mark.parametrize("request_args, message", [
    (dict(precision="fp32", min_psnr=40.0), "--min-psnr is the quality floor of --precision auto"),
    (dict(precision="auto", min_psnr=-1.0), "positive"),
    (dict(precision="auto", min_psnr=float("nan")), "positive"),
])
def test_bad_requests_are_one_line_errors(request_args, message):
    with pytest.raises(DMPHNError, match=message):
        AutoRequest(**request_args)
    assert AutoRequest(precision="auto", min_psnr=40.0).precisions == PRECISIONS


def test_auto_runs_a_checkpoint_fp32_exact_and_says_why(make_checkpoint, tmp_path):
    checkpoint = make_checkpoint(1)
    lines: list[str] = []
    runner = runner_for_request(checkpoint, "auto", "cpu", "auto", cache=tmp_path, log=lines.append)
    assert isinstance(runner, AutoRunner)
    x = photo_batch(1, H, W).numpy()
    with runner, TorchRunner(load_checkpoint(checkpoint).build_model) as reference:
        assert np.abs(runner.infer(x) - reference.infer(x)).max() <= 1e-4
    reasons = [line for line in lines if line.startswith("runtime: ")]
    assert len(reasons) == 1 and f"cpu/fp32 for {H}x{W}" in reasons[0], lines
    assert runner.precision == "fp32" and runner.name.endswith("(auto)")


def test_precision_auto_needs_a_checkpoint(make_checkpoint, tmp_path):
    artifact = tmp_path / "model.onnx"
    artifact.write_bytes(b"not really")
    with pytest.raises(DMPHNError, match="exported artifact"):
        runner_for_request(artifact, "auto", "cpu", "auto", min_psnr=40.0, cache=tmp_path)
    with pytest.raises(DMPHNError, match="runs the checkpoint directly"):
        runner_for_request(make_checkpoint(1), "torch", "cpu", "auto", min_psnr=40.0, cache=tmp_path)
