"""TensorRT export: the FP16 overflow guard (runs on CPU), profile rules, and engine builds (CUDA + tensorrt)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from typer.testing import CliRunner

from dmphn_core.artifact import sidecar_path
from dmphn_core.errors import DMPHNError, RuntimeUnavailable
from export.fp16_guard import FP16_MAX, FP16_SAFE_MAX, activation_ranges, find_fp16_overflow_nodes, fp16_overflow_report
from export.to_onnx import export_onnx
from export.to_tensorrt import _profile_shapes, check_tensorrt_available
from export.verify import reference_output, verification_inputs
from runtimes.compare import psnr_db
from tests.conftest import TINY_HW, TRT_REASON, random_model, requires_tensorrt

H, W = TINY_HW



def _overflowing_model():
    """DMPHN-1 whose first conv is scaled so its output (and what follows) leaves the fp16 range."""
    model = random_model(1)
    with torch.no_grad():
        model.encoders[0].layers[0].weight.mul_(3e5)
    return model


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("trt_onnx")
    normal, overflowing = folder / "normal.onnx", folder / "overflow.onnx"
    export_onnx(random_model(1), normal, batch=1, height=H, width=W, simplify=False)
    export_onnx(_overflowing_model(), overflowing, batch=1, height=H, width=W, simplify=False)
    return normal, overflowing


def _inputs():
    return [x for _, x in verification_inputs(1, H, W)]


def test_normal_model_has_no_fp16_overflow(onnx_files):
    normal, _ = onnx_files
    report = fp16_overflow_report(normal, _inputs())
    assert report["nodes"] == [] and report["tensors"] == []
    assert 0 < report["largest_abs"] < FP16_SAFE_MAX
    # the probe is not blind: with a tiny threshold the same activations are flagged
    assert len(find_fp16_overflow_nodes(normal, _inputs(), threshold=1e-3)) > 10


def test_scaled_weights_are_detected_with_their_consumers(onnx_files):
    _, overflowing = onnx_files
    model = onnx.load(str(overflowing))
    report = fp16_overflow_report(overflowing, _inputs())
    assert report["nodes"], "scaled conv weights must overflow fp16"
    assert all(value > FP16_SAFE_MAX for value in report["max_abs"].values())
    assert report["largest_abs"] > FP16_MAX
    first_conv = next(node for node in model.graph.node if node.op_type == "Conv")
    assert first_conv.name in report["nodes"]
    hot = set(report["tensors"])
    readers = [node.name for node in model.graph.node if hot.intersection(node.input)]
    assert set(readers) <= set(report["nodes"])  # a node reading an overflowing tensor must stay fp32 too
    # the exact activation maximum agrees with an independent computation in PyTorch
    scaled = _overflowing_model()
    x = torch.from_numpy(_inputs()[0])
    with torch.no_grad():
        expected = scaled.encoders[0].layers[0](x - 0.5).abs().max().item()
    ranges = activation_ranges(overflowing, _inputs()[:1])
    assert ranges[first_conv.output[0]] == pytest.approx(expected, rel=1e-5)


def test_profile_shapes():
    assert _profile_shapes([1, 3, H, W], 1, H, W, None) is None
    assert _profile_shapes([None, 3, H, W], 2, H, W, 8) == {
        "min": [1, 3, H, W], "opt": [2, 3, H, W], "max": [8, 3, H, W]}
    assert _profile_shapes([None, 3, H, W], 2, H, W, None)["max"] == [2, 3, H, W]
    with pytest.raises(DMPHNError, match="--dynamic-batch"):
        _profile_shapes([1, 3, H, W], 1, H, W, 4)
    with pytest.raises(DMPHNError, match="static height"):
        _profile_shapes([1, 3, H, W], 1, H + 8, W, None)


def test_sidecar_sits_beside_engine(tmp_path):
    assert sidecar_path(tmp_path / "m.engine") == tmp_path / "m.engine.json"


@pytest.mark.skipif(TRT_REASON is None, reason="tensorrt and CUDA are present here")
def test_missing_tensorrt_or_cuda_is_one_clear_error():
    with pytest.raises(RuntimeUnavailable) as info:
        check_tensorrt_available()
    message = str(info.value)
    assert len(message.splitlines()) == 1
    assert "tensorrt" in message.lower() or "CUDA" in message


# -- engine builds: CUDA + tensorrt only -------------------------------------------------------
@requires_tensorrt
@pytest.mark.tensorrt
@pytest.mark.parametrize(("precision", "bound"), [("fp32", 1e-4), ("fp16", 45.0)])
def test_engine_matches_pytorch(tmp_path, precision, bound):
    from export.to_tensorrt import build_engine
    from runtimes.tensorrt import TensorRTRunner

    model = random_model(4)
    engine = tmp_path / f"m_{precision}.engine"
    cache = tmp_path / "timing.cache"
    info = build_engine(model, engine, batch=1, height=H, width=W, precision=precision, timing_cache=cache)
    assert engine.is_file() and cache.is_file() and not info["timing_cache_reused"]
    sidecar = json.loads(sidecar_path(engine).read_text())
    assert sidecar["precision"] == precision and sidecar["tensorrt"]["version"]
    assert sidecar["gpu"]["name"] == torch.cuda.get_device_name()
    with TensorRTRunner(engine, precision=precision) as runner:
        for _, x in verification_inputs(1, H, W):
            y, ref = runner.infer(x), reference_output(model, x, "cuda")
            if precision == "fp32":
                assert np.abs(y - ref).max() <= bound
            else:
                assert psnr_db(y, ref) >= bound
    again = build_engine(model, tmp_path / "again.engine", batch=1, height=H, width=W, precision=precision,
                         timing_cache=cache)
    assert again["timing_cache_reused"]


@requires_tensorrt
@pytest.mark.tensorrt
def test_dynamic_batch_engine_runs_its_profile(tmp_path):
    from export.to_tensorrt import build_engine
    from runtimes.tensorrt import TensorRTRunner

    model = random_model(2)
    engine = tmp_path / "dyn.engine"
    info = build_engine(model, engine, batch=2, height=H, width=W, precision="fp32", max_batch=4)
    assert info["profile"] == {"min": [1, 3, H, W], "opt": [2, 3, H, W], "max": [4, 3, H, W]}
    with TensorRTRunner(engine, precision="fp32") as runner:
        assert runner.input_shape == (None, 3, H, W)
        for batch in (1, 3, 4):
            x = verification_inputs(batch, H, W)[0][1]
            assert np.abs(runner.infer(x) - reference_output(model, x, "cuda")).max() <= 1e-4
        with pytest.raises(DMPHNError, match="optimisation profile"):
            runner.infer(np.zeros((5, 3, H, W), np.float32))


@requires_tensorrt
@pytest.mark.tensorrt
def test_fp16_engine_keeps_overflowing_layers_in_fp32(tmp_path):
    from export.to_tensorrt import build_engine
    from runtimes.tensorrt import TensorRTRunner

    model = _overflowing_model()
    engine = tmp_path / "overflow.engine"
    info = build_engine(model, engine, batch=1, height=H, width=W, precision="fp16")
    assert info["fp16_overflow_guard"]["nodes"] and info["fp32_pinned_layers"]
    with TensorRTRunner(engine, precision="fp16") as runner:
        x = verification_inputs(1, H, W)[1][1]
        y = runner.infer(x)
    assert np.isfinite(y).all()
    ref = reference_output(model, x, "cuda")
    assert psnr_db(y / np.abs(ref).max(), ref / np.abs(ref).max()) >= 40.0


@requires_tensorrt
@pytest.mark.tensorrt
def test_cli_trt_writes_engine_and_sidecar_only_on_success(make_checkpoint, tmp_path):
    from cli.export import app

    ckpt = str(make_checkpoint(1))
    out = tmp_path / "m.engine"
    failed = CliRunner().invoke(app, ["trt", ckpt, "-H", str(H), "-W", str(W), "--precision", "fp16",
                                      "--min-psnr", "1000", "-o", str(out)])
    assert failed.exit_code == 2 and "failed verification" in failed.stderr
    assert not out.exists() and not sidecar_path(out).exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    ok = CliRunner().invoke(app, ["trt", ckpt, "-H", str(H), "-W", str(W), "--precision", "fp16", "-o", str(out)])
    assert ok.exit_code == 0, ok.output
    assert out.is_file() and json.loads(sidecar_path(out).read_text())["precision"] == "fp16"


# -- the builder's call sequence against a fake `tensorrt` (CPU) ------------------------------
# tests/fakes/fake_tensorrt.py: TensorRT 10 signatures and documented failure values only; these
# tests check our logic and error handling, not TensorRT.
FH, FW = 8, 16


@pytest.fixture
def fake_trt(monkeypatch):
    from export import to_tensorrt
    from tests.fakes.fake_tensorrt import install_fake_tensorrt

    trt = install_fake_tensorrt(monkeypatch, expansions={"Mul": 3})
    monkeypatch.setattr(to_tensorrt, "_gpu_info", lambda: {"name": "Fake GPU", "compute_capability": "9.0",
                                                           "cuda": "12.9"})
    return trt


@pytest.fixture
def chain_onnx(tmp_path):
    from tests.fakes.onnx_graphs import overflow_chain

    return overflow_chain(tmp_path / "chain.onnx", FH, FW)


def _fake_build(tmp_path, onnx_path, precision="fp16", name="m.engine", **kwargs):
    from export.to_tensorrt import build_engine

    return build_engine(random_model(1), tmp_path / name, batch=1, height=FH, width=FW, precision=precision,
                        onnx_path=onnx_path, **kwargs)


def test_fake_fp16_build_pins_every_layer_touching_the_overflow_by_tensor(fake_trt, chain_onnx, tmp_path):
    info = _fake_build(tmp_path, chain_onnx)
    assert sorted(info["fp16_overflow_guard"]["nodes"]) == sorted(["scale_up", "Relu_1", "Mul_2"])
    network = fake_trt.state.networks[-1]
    by_node: dict[str, list] = {}
    node_of_layer = ["scale_up"] * 3 + ["relu"] + ["consumer"] * 3 + ["residual"]
    assert len(network.layers) == len(node_of_layer)  # Mul nodes expand to 3 layers in the fake parser
    for layer, node in zip(network.layers, node_of_layer):
        by_node.setdefault(node, []).append(layer)
    # every layer of the producing node (its middle one reads and writes parser-made tensors only),
    # the unnamed Relu, and every layer of the unnamed consumer, whose output is back in range
    for node in ("scale_up", "relu", "consumer"):
        for layer in by_node[node]:
            assert layer.precision_is_set and layer.precision == fake_trt.float32, (node, layer.name)
            assert layer.output_types == {0: fake_trt.float32}, (node, layer.name)
    assert not by_node["residual"][0].precision_is_set  # reads t_small (in range) and the input only
    assert info["fp32_pinned_layers"] == [layer.name for layer in network.layers[:7]]
    config = fake_trt.state.configs[-1]
    assert config.get_flag(fake_trt.BuilderFlag.FP16) and config.get_flag(fake_trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    sidecar = json.loads(sidecar_path(tmp_path / "m.engine").read_text())
    assert sidecar["tensorrt"]["fp32_pinned_layers"] == info["fp32_pinned_layers"]
    assert sidecar["tensorrt"]["version"] == fake_trt.__version__ and sidecar["gpu"]["compute_capability"] == "9.0"


def test_fake_fp32_build_turns_tf32_off_and_pins_nothing(fake_trt, chain_onnx, tmp_path):
    info = _fake_build(tmp_path, chain_onnx, precision="fp32")
    config = fake_trt.state.configs[-1]
    assert not config.get_flag(fake_trt.BuilderFlag.TF32) and not config.get_flag(fake_trt.BuilderFlag.FP16)
    assert not config.get_flag(fake_trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    assert info["fp32_pinned_layers"] == [] and not info["fp16_overflow_guard"]["checked"]
    assert not any(layer.precision_is_set for layer in fake_trt.state.networks[-1].layers)


def _write_recorded(cache, blob: bytes) -> None:
    """A timing cache file with a matching hash record, as a build writes it."""
    import hashlib

    from export.trt_timing_cache import record_path

    cache.write_bytes(blob)
    record_path(cache).write_text(json.dumps({"sha256": hashlib.sha256(blob).hexdigest()}))


def test_fake_timing_cache_reuse_and_fallbacks(fake_trt, chain_onnx, tmp_path):
    from export.trt_timing_cache import record_path
    from tests.fakes.fake_tensorrt import CACHE_MAGIC

    cache = tmp_path / "timing.cache"
    first = _fake_build(tmp_path, chain_onnx, precision="fp32", timing_cache=cache)
    assert not first["timing_cache_reused"] and first["timing_cache_note"] is None
    assert cache.read_bytes() == CACHE_MAGIC + b"9.0"
    record = json.loads(record_path(cache).read_text())
    assert record["tensorrt"] == fake_trt.__version__ and record["gpu"]["name"] == "Fake GPU"
    assert _fake_build(tmp_path, chain_onnx, precision="fp32", timing_cache=cache)["timing_cache_reused"]

    cache.write_bytes(CACHE_MAGIC + b"9.0 tampered")  # the record no longer matches: not even read
    tampered = _fake_build(tmp_path, chain_onnx, precision="fp32", timing_cache=cache)
    assert not tampered["timing_cache_reused"] and "does not match the sha256" in tampered["timing_cache_note"]
    assert not any(blob.endswith(b"tampered") for _, blob in fake_trt.state.calls("create_timing_cache"))

    record_path(cache).unlink()
    unrecorded = _fake_build(tmp_path, chain_onnx, precision="fp32", timing_cache=cache)
    assert "no readable record" in unrecorded["timing_cache_note"] and record_path(cache).is_file()

    _write_recorded(cache, b"\x00garbage")  # trusted bytes TensorRT cannot read: create_timing_cache -> None
    corrupt = _fake_build(tmp_path, chain_onnx, precision="fp32", timing_cache=cache)
    assert not corrupt["timing_cache_reused"] and "unreadable" in corrupt["timing_cache_note"]
    assert any("ignored" in line for line in corrupt["log_lines"])
    assert cache.read_bytes() == CACHE_MAGIC + b"9.0"  # replaced by the fresh cache

    _write_recorded(cache, CACHE_MAGIC + b"8.0")  # set_timing_cache -> False: made on another GPU
    other_gpu = _fake_build(tmp_path, chain_onnx, precision="fp32", timing_cache=cache)
    assert not other_gpu["timing_cache_reused"] and "another GPU" in other_gpu["timing_cache_note"]
    assert cache.read_bytes() == CACHE_MAGIC + b"9.0"
    assert all(not ignore for _, _, ignore in fake_trt.state.calls("set_timing_cache"))  # never ignore_mismatch


def test_fake_timing_cache_is_serialized_from_the_attached_object_after_the_build(fake_trt, chain_onnx, tmp_path,
                                                                                 monkeypatch):
    """Read back from the ITimingCache we attached, while we still hold it: never through the config
    after our reference is gone (an order whose lifetime TensorRT does not document)."""
    monkeypatch.setattr(fake_trt.IBuilderConfig, "get_timing_cache",
                        lambda self: pytest.fail("the cache is read back through the config"))
    _fake_build(tmp_path, chain_onnx, precision="fp32", timing_cache=tmp_path / "t.cache")
    names = [entry[0] for entry in fake_trt.state.log]
    assert names.index("build_serialized_network") < names.index("serialize_timing_cache")
    fake_trt.state.fail.add("serialize")
    with pytest.raises(DMPHNError, match="could not serialize the timing cache"):
        _fake_build(tmp_path, chain_onnx, precision="fp32", timing_cache=tmp_path / "t.cache", name="n.engine")
    assert not (tmp_path / "n.engine").exists()


@pytest.mark.parametrize(("failing", "what"), [("Builder", "a builder"), ("create_network", "a network definition"),
                                               ("create_builder_config", "a builder config")])
def test_fake_builder_objects_that_fail_to_appear_are_one_line_errors(fake_trt, chain_onnx, tmp_path, failing, what):
    fake_trt.state.fail.add(failing)
    with pytest.raises(DMPHNError, match=f"TensorRT could not create {what}") as info:
        _fake_build(tmp_path, chain_onnx, precision="fp32")
    assert len(str(info.value).splitlines()) == 1 and not (tmp_path / "m.engine").exists()


@pytest.mark.parametrize(("failing", "message"), [("create_optimization_profile", "could not create an optimization profile"),
                                                  ("add_optimization_profile", "refused the optimization profile")])
def test_fake_profile_failures_are_one_line_errors(fake_trt, tmp_path, failing, message):
    from tests.fakes.onnx_graphs import overflow_chain

    fake_trt.state.fail.add(failing)
    onnx_path = overflow_chain(tmp_path / "dyn.onnx", FH, FW, dynamic_batch=True)
    with pytest.raises(DMPHNError, match=message):
        _fake_build(tmp_path, onnx_path, precision="fp32", max_batch=4)


def test_fake_pin_without_fp32_tactic_fails_obey_and_builds_with_prefer(fake_trt, chain_onnx, tmp_path):
    fake_trt.state.no_fp32_tactic.add("scale_up")
    with pytest.raises(DMPHNError, match="no implementation of layer scale_up.*--precision-constraints prefer"):
        _fake_build(tmp_path, chain_onnx)
    info = _fake_build(tmp_path, chain_onnx, precision_constraints="prefer")
    config = fake_trt.state.configs[-1]
    assert config.get_flag(fake_trt.BuilderFlag.PREFER_PRECISION_CONSTRAINTS)
    assert not config.get_flag(fake_trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    sidecar = json.loads(sidecar_path(tmp_path / "m.engine").read_text())
    assert sidecar["tensorrt"]["precision_constraints"] == info["precision_constraints"] == "prefer"
    assert any("its fp32 constraint could not be met" in line for line in info["build_log"])
    with pytest.raises(DMPHNError, match="unknown precision constraints"):
        _fake_build(tmp_path, chain_onnx, precision_constraints="strict")


def test_fake_workspace_is_uncapped_unless_asked_and_recorded(fake_trt, chain_onnx, tmp_path):
    _fake_build(tmp_path, chain_onnx, precision="fp32")
    assert fake_trt.state.configs[-1].pools == {}  # TensorRT's default: the GPU's memory
    assert json.loads(sidecar_path(tmp_path / "m.engine").read_text())["tensorrt"]["workspace_gib"] is None
    _fake_build(tmp_path, chain_onnx, precision="fp32", workspace_gb=4)
    assert fake_trt.state.configs[-1].pools == {fake_trt.MemoryPoolType.WORKSPACE: 4 * 2**30}
    assert json.loads(sidecar_path(tmp_path / "m.engine").read_text())["tensorrt"]["workspace_gib"] == 4


def test_fake_fp16_overflow_probe_feeds_blurred_frames(fake_trt, chain_onnx, tmp_path, monkeypatch):
    """What the guard measures is what a deblurring model is deployed on: blurred photos, not noise or a sharp photo."""
    import numpy as np

    from export import to_tensorrt
    from export.verify import natural_inputs, verification_inputs

    fed = []
    real = to_tensorrt.fp16_overflow_report
    monkeypatch.setattr(to_tensorrt, "fp16_overflow_report", lambda path, inputs: fed.extend(inputs) or real(path, inputs))
    info = _fake_build(tmp_path, chain_onnx)
    expected = [x for _, x in natural_inputs(1, FH, FW)]
    assert len(fed) == len(expected) and all(np.array_equal(a, b) for a, b in zip(fed, expected))
    assert not any(np.array_equal(a, b) for a in fed for _, b in verification_inputs(1, FH, FW))
    assert info["fp16_overflow_guard"]["inputs"] == "camera-shake blurred photos"


def test_artifact_caches_give_engines_a_timing_cache_in_their_folder(tmp_path, monkeypatch):
    """The benchmark's cache and the per-user store both build engines with a timing cache they keep,
    so a second process does not time every 720p tactic again."""
    from benchmarks.prepare import ArtifactCache
    from export import cache as export_cache
    from export.trt_timing_cache import CACHE_FILE_NAME

    seen = {}

    def fake_export(fmt, model, path, **options):
        seen.setdefault(fmt, options)
        path.write_bytes(b"artifact")
        if fmt == "tensorrt":  # an engine's sidecar is part of the entry (the cache hashes it too)
            sidecar_path(path).write_text("{}")
        return {}, type("Report", (), {"to_dict": lambda self: {}, "min_psnr_db": None})()

    monkeypatch.setattr(export_cache, "export_verified", fake_export)
    ArtifactCache(None, tmp_path / "bench").artifact("tensorrt", 1, FH, FW, "cuda", "fp16")
    assert seen.pop("tensorrt")["timing_cache"] == tmp_path / "bench" / CACHE_FILE_NAME
    export_cache.ArtifactStore(tmp_path / "store").get(random_model(1), "tensorrt", 1, FH, FW, "cuda", "fp16",
                                                       digest="d")
    assert seen["tensorrt"]["timing_cache"] == tmp_path / "store" / CACHE_FILE_NAME
    assert "timing_cache" not in seen.get("onnx", {})  # ONNX needs none


@pytest.mark.parametrize("failing", ["build_serialized_network", "parse_from_file"])
def test_fake_failed_build_or_parse_is_an_error_and_writes_nothing(fake_trt, chain_onnx, tmp_path, failing):
    fake_trt.state.fail.add(failing)
    with pytest.raises(DMPHNError, match="fake" if failing == "build_serialized_network" else "could not parse"):
        _fake_build(tmp_path, chain_onnx)
    assert not (tmp_path / "m.engine").exists() and not sidecar_path(tmp_path / "m.engine").exists()


def test_fake_dynamic_batch_sets_one_profile(fake_trt, tmp_path):
    from tests.fakes.onnx_graphs import overflow_chain

    onnx_path = overflow_chain(tmp_path / "dyn.onnx", FH, FW, dynamic_batch=True)
    info = _fake_build(tmp_path, onnx_path, precision="fp32", max_batch=4)
    [profile] = fake_trt.state.configs[-1].profiles
    assert profile.shapes == {"blurred": ((1, 3, FH, FW), (1, 3, FH, FW), (4, 3, FH, FW))}
    assert info["profile"]["max"] == [4, 3, FH, FW]


def test_tensorrt_11_is_refused_with_the_supported_range(monkeypatch):
    from tests.fakes.fake_tensorrt import install_fake_tensorrt

    install_fake_tensorrt(monkeypatch, version="11.0.0.1")
    with pytest.raises(RuntimeUnavailable, match=r"TensorRT 11\.0\.0\.1 .*>=10\.0,<11"):
        check_tensorrt_available()


def test_cli_unknown_precision_constraints_is_named_before_availability():
    from typer.testing import CliRunner

    from cli.export import app

    result = CliRunner().invoke(app, ["trt", "--precision-constraints", "strict"])
    assert result.exit_code == 2 and "unknown --precision-constraints 'strict'; use obey or prefer" in result.stderr
