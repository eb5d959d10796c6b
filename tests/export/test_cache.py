"""The artifact cache and ``--runtime auto``: built once, verified once, reused; stale entries rebuilt."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from dmphn_core.checkpoint import save_checkpoint
from dmphn_core.errors import DMPHNError
from dmphn_core.fileio import file_sha256
from export import cache as cache_module
from export.cache import ArtifactStore, CachedArtifactRunner, model_digest, pick_fast_runtime, runner_for_model
from runtimes import runner_classes
from runtimes.base import Runner
from runtimes.torch_eager import TorchReferenceRunner, TorchRunner
from tests.conftest import random_model

H, W = 32, 64


@pytest.fixture(scope="module")
def built_store(tmp_path_factory):
    """A store holding the verified ONNX of ``random_model(1)`` at 1x3x32x64: built once for this module."""
    root = tmp_path_factory.mktemp("built_store")
    ArtifactStore(root).get(random_model(1), "onnx", 1, H, W, "cpu", "fp32")
    return root


@pytest.fixture
def filled_store_root(built_store, tmp_path):
    """A copy of ``built_store`` that a test may damage (an export costs ~5 s; a copy, milliseconds)."""
    shutil.copytree(built_store, tmp_path, dirs_exist_ok=True)
    return tmp_path


def test_second_call_is_a_cache_hit_with_no_export(tmp_path, monkeypatch):
    model = random_model(1)
    store = ArtifactStore(tmp_path)
    path, built = store.get(model, "onnx", 1, H, W, "cpu", "fp32")
    assert built and path.is_file()
    monkeypatch.setattr(cache_module, "export_verified", lambda *a, **k: pytest.fail("exported again"))
    again, built_again = store.get(model, "onnx", 1, H, W, "cpu", "fp32")
    assert again == path and not built_again


def test_a_new_checkpoint_gets_a_new_key(filled_store_root):
    first, second = random_model(1, seed=0), random_model(1, seed=1)
    assert model_digest(first) != model_digest(second)
    assert model_digest(first) == model_digest(random_model(1, seed=0))
    store = ArtifactStore(filled_store_root)
    (cached, built_first), (other, built_second) = (store.get(model, "onnx", 1, H, W, "cpu", "fp32")
                                                    for model in (first, second))
    assert cached != other and not built_first and built_second  # the copied entry is not the new model's


def test_a_raised_recipe_revision_rebuilds_only_that_formats_entries(filled_store_root, monkeypatch):
    import dataclasses

    from export import exporter as exporter_module

    model = random_model(1)
    store = ArtifactStore(filled_store_root)
    cached, _ = store.get(model, "onnx", 1, H, W, "cpu", "fp32")
    onnx_exporter = exporter_module.exporters()["onnx"]
    revised = {**exporter_module.exporters(), "onnx": dataclasses.replace(onnx_exporter, recipe=onnx_exporter.recipe + 1)}
    monkeypatch.setattr(exporter_module, "exporters", lambda: revised)
    rebuilt, built = store.get(model, "onnx", 1, H, W, "cpu", "fp32")
    assert built and rebuilt != cached and rebuilt.parent == cached.parent
    assert rebuilt.name.endswith(f"r{onnx_exporter.recipe + 1}.onnx")
    assert f"onnx{onnx_exporter.recipe + 1}" in exporter_module.recipe_revisions().split(",")
    assert store.path("d", "openvino", 1, H, W, "cpu", "fp32").name.endswith("_v" + cache_module.__version__ + ".xml")


def test_a_one_time_export_is_announced_with_the_last_export_time(filled_store_root):
    """Issue 28: the first call at a new size said nothing for minutes while it exported."""
    notices: list[str] = []
    store = ArtifactStore(filled_store_root, notice=notices.append)
    store.get(random_model(1), "onnx", 1, H, W, "cpu", "fp32")
    assert notices == []  # a cache hit is quick: nothing to announce
    store.get(random_model(1), "onnx", 1, H + 8, W, "cpu", "fp32")
    # the copied entry (built by this toolkit) recorded how long its export took, and at what size
    recorded = json.loads(next(filled_store_root.glob(f"*/onnx_cpu_fp32_b1_{H}x{W}_*.verified.json")).read_text())
    assert recorded["shape"] == [1, 3, H, W] and recorded["export_seconds"] > 0
    assert len(notices) == 1 and notices[0].startswith(f"one-time export: building and verifying the onnx fp32 artifact for {W}x{H + 8} WxH")
    assert f"the last one here, {W}x{H} WxH, took" in notices[0]


def test_the_export_notice_goes_to_stderr_by_default(tmp_path, capsys):
    ArtifactStore(tmp_path).get(random_model(1), "onnx", 1, H, W, "cpu", "fp32")
    captured = capsys.readouterr()
    assert "one-time export" in captured.err and "one-time export" not in captured.out
    assert "the last one here" not in captured.err  # nothing recorded yet: no guess


@pytest.mark.parametrize("damage", ["corrupt", "unrecorded"])
def test_a_damaged_entry_is_rebuilt_never_trusted(filled_store_root, damage):
    model = random_model(1)
    lines: list[str] = []
    store = ArtifactStore(filled_store_root, log=lines.append)
    path, built = store.get(model, "onnx", 1, H, W, "cpu", "fp32")
    assert not built  # the copied, intact entry
    if damage == "corrupt":
        path.write_bytes(path.read_bytes()[:-100] + b"\0" * 100)  # same size, other weights
    else:
        store._record(path).unlink()
    rebuilt, built = store.get(model, "onnx", 1, H, W, "cpu", "fp32")
    assert built and rebuilt == path
    assert any("rebuilding" in line for line in lines)
    record = json.loads(store._record(path).read_text())
    assert record["files"] == {path.name: file_sha256(path)} and record["verification"]["passed"]


def test_cached_runner_matches_pytorch_and_builds_once_per_shape(tmp_path, make_checkpoint):
    store = ArtifactStore(tmp_path)
    x = np.random.default_rng(0).random((1, 3, H, W), dtype=np.float32)
    y = np.random.default_rng(1).random((1, 3, H + 8, W), dtype=np.float32)
    checkpoint = make_checkpoint(1)
    with CachedArtifactRunner(checkpoint, "ort", store=store) as runner, TorchRunner(checkpoint) as reference:
        np.testing.assert_allclose(runner.infer(x), reference.infer(x), atol=1e-4)
        runner.infer(x)
        np.testing.assert_allclose(runner.infer(y), reference.infer(y), atol=1e-4)
        assert len(runner.built) == 2  # one artifact per shape, the repeat came from memory


def test_auto_picks_an_installed_exported_runtime_and_says_why(tmp_path, make_checkpoint):
    lines: list[str] = []
    runner = runner_for_model(make_checkpoint(1), "auto", "cpu", cache=tmp_path, log=lines.append)
    assert isinstance(runner, CachedArtifactRunner) and runner.inner == pick_fast_runtime("cpu", "fp32")[0]
    assert lines[0].startswith(f"runtime: {runner.inner} on cpu/fp32 (")


def test_auto_falls_back_to_per_patch_pytorch_with_the_reason(tmp_path, make_checkpoint, monkeypatch):
    candidates = [cls for cls in runner_classes().values() if "cpu" in cls.auto_rank]
    assert candidates  # ONNX Runtime at least
    for cls in candidates:
        monkeypatch.setattr(cls, "unavailable_reason", classmethod(lambda cls, d, p: f"{cls.runtime} is not installed"))
    runtime, why = pick_fast_runtime("cpu", "fp32")
    assert runtime == "torch-ref" and "ort: ort is not installed" in why
    lines: list[str] = []
    runner = runner_for_model(make_checkpoint(1), "auto", "cpu", cache=tmp_path, log=lines.append)
    assert isinstance(runner, TorchReferenceRunner)
    assert "no faster runtime can run here" in lines[0]


def test_reduced_precision_is_never_picked_silently(tmp_path, make_checkpoint):
    runner = runner_for_model(make_checkpoint(1), "auto", "cpu", cache=tmp_path, log=None)
    assert isinstance(runner, Runner) and runner.precision == "fp32"


def test_an_artifact_runtime_with_a_checkpoint_exports_through_the_cache(tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint(path, random_model(1), training={})
    runner = runner_for_model(path, "ort", "cpu", cache=tmp_path / "cache", log=None)
    assert isinstance(runner, CachedArtifactRunner) and runner.inner == "ort"


# -- an artifact built elsewhere enters only verified ---------------------------------------------------------

def test_an_artifact_built_elsewhere_is_adopted_verified_and_hashed(built_store, tmp_path, monkeypatch):
    model = random_model(1)
    (elsewhere,) = built_store.glob("*/onnx_cpu_fp32_b1_*.onnx")
    store = ArtifactStore(tmp_path / "store")
    path = store.adopt(model, "onnx", elsewhere, 1, H, W, "cpu", "fp32")
    assert path.read_bytes() == elsewhere.read_bytes()
    record = json.loads(store._record(path).read_text())
    assert record["prebuilt"] == str(elsewhere) and record["files"] == {path.name: file_sha256(path)}
    assert record["verified_psnr_db"] > 60 and "export_seconds" not in record
    monkeypatch.setattr(cache_module, "export_verified", lambda *a, **k: pytest.fail("exported again"))
    assert store.get(model, "onnx", 1, H, W, "cpu", "fp32") == (path, False)


def test_an_artifact_of_other_weights_is_refused_and_nothing_is_written(built_store, tmp_path):
    from export.exporter import ExportFailed

    (elsewhere,) = built_store.glob("*/onnx_cpu_fp32_b1_*.onnx")
    store = ArtifactStore(tmp_path / "store")
    with pytest.raises(ExportFailed, match="failed verification"):
        store.adopt(random_model(1, seed=7), "onnx", elsewhere, 1, H, W, "cpu", "fp32")
    assert not [f for f in (tmp_path / "store").rglob("*") if f.is_file()]


def test_adopting_an_openvino_ir_copies_its_weights_file(tmp_path):
    pytest.importorskip("openvino", reason="the OpenVINO runtime is not installed")
    model = random_model(1)
    built, _ = ArtifactStore(tmp_path / "built").get(model, "openvino", 1, H, W, "cpu", "fp32")
    store = ArtifactStore(tmp_path / "store")
    path = store.adopt(model, "openvino", built, 1, H, W, "cpu", "fp32")
    assert path.with_suffix(".bin").read_bytes() == built.with_suffix(".bin").read_bytes()
    assert set(json.loads(store._record(path).read_text())["files"]) == {path.name, path.with_suffix(".bin").name}
    built.with_suffix(".bin").unlink()
    with pytest.raises(DMPHNError, match="lacks"):
        store.adopt(model, "openvino", built, 1, H, W, "cpu", "fp32")
    assert store.get(model, "openvino", 1, H, W, "cpu", "fp32") == (path, False)  # the store as it was


# -- every file of an entry is hashed; a bad entry is rebuilt, never fatal (issue #27 items 1, 7) ----------

def test_every_file_of_an_openvino_entry_is_hashed_and_checked(tmp_path):
    pytest.importorskip("openvino", reason="the OpenVINO runtime is not installed")
    model = random_model(1)
    lines: list[str] = []
    store = ArtifactStore(tmp_path, log=lines.append)
    path, _ = store.get(model, "openvino", 1, H, W, "cpu", "fp32")
    weights = path.with_suffix(".bin")
    floats = np.frombuffer(weights.read_bytes(), dtype=np.float32) * 1.5  # same size, other weights
    weights.write_bytes(floats.tobytes())
    rebuilt, built = store.get(model, "openvino", 1, H, W, "cpu", "fp32")
    assert built and rebuilt == path and any(weights.name in line and "rebuilding" in line for line in lines)
    record = json.loads(store._record(path).read_text())
    assert set(record["files"]) == {path.name, weights.name} and record["files"][weights.name] == file_sha256(weights)


def test_an_entry_its_runtime_cannot_load_is_rebuilt_not_fatal(filled_store_root, make_checkpoint):
    """A record that matches files the runtime rejects (another toolkit wrote both) costs one rebuild."""
    model = random_model(1)
    store = ArtifactStore(filled_store_root, log=None)
    path, _ = store.get(model, "onnx", 1, H, W, "cpu", "fp32")
    path.write_bytes(b"\x7f" * 4096)
    record = json.loads(store._record(path).read_text())
    digest = file_sha256(path)  # the record matches the damaged file, in this toolkit's form and the older one
    store._record(path).write_text(json.dumps({**record, "files": {path.name: digest}, "sha256": digest}))
    x = np.random.default_rng(0).random((1, 3, H, W), dtype=np.float32)
    with CachedArtifactRunner(lambda: model, "ort", store=store) as runner, TorchRunner(lambda: model) as reference:
        np.testing.assert_allclose(runner.infer(x), reference.infer(x), atol=1e-4)
        assert runner.built == [path]
    assert store.get(model, "onnx", 1, H, W, "cpu", "fp32") == (path, False)  # and the next run hits


def _killed_writer(destination) -> None:
    """A child that starts an atomic write at ``destination`` and is SIGKILLed in the middle of it."""
    import os
    import signal
    import subprocess
    import sys

    code = ("import os, signal, sys\nfrom dmphn_core.fileio import atomic_path\n"
            "with atomic_path(sys.argv[1]) as tmp:\n    tmp.write_bytes(b'half')\n    os.kill(os.getpid(), signal.SIGKILL)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code, str(destination)], env=env, timeout=120)
    assert result.returncode == -signal.SIGKILL


def test_temporaries_of_a_killed_export_are_removed_never_a_live_one(filled_store_root):
    from dmphn_core.fileio import atomic_path

    model = random_model(1)
    store = ArtifactStore(filled_store_root, log=None)
    path, _ = store.get(model, "onnx", 1, H, W, "cpu", "fp32")
    _killed_writer(path.with_name("other.onnx"))
    left = [p for p in path.parent.iterdir() if p.name.startswith(".other.onnx.")]
    assert len(left) == 1  # what a SIGKILL leaves
    with atomic_path(path.with_name("live.onnx")) as live:  # this process is still writing it
        live.write_bytes(b"in progress")
        assert store.get(model, "onnx", 1, H, W, "cpu", "fp32") == (path, False)
        assert not left[0].exists() and live.exists()
