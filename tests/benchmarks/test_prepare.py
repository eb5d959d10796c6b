import pytest

from benchmarks.prepare import ArtifactCache, RunnerSpec, make_runner, parse_precisions, parse_runtimes, parse_shape
from dmphn_core.errors import DMPHNError, RuntimeUnavailable
from runtimes import runtime_names


def test_parsers_accept_lists_and_reject_unknowns():
    assert parse_runtimes("all") == list(runtime_names())
    assert parse_runtimes("torch, ort") == ["torch", "ort"]
    assert parse_precisions("fp32,fp16") == ["fp32", "fp16"]
    assert parse_shape("720x1280") == (720, 1280)
    with pytest.raises(DMPHNError, match="unknown runtime tflite"):
        parse_runtimes("torch,tflite")
    with pytest.raises(DMPHNError, match="HEIGHTxWIDTH"):
        parse_shape("720-1280")
    with pytest.raises(DMPHNError, match="unknown precision"):
        parse_precisions("int4")


def test_labels_name_runtime_options_device_and_precision():
    assert RunnerSpec("ort", "cpu", "fp32").label == "ort-cpu-fp32"
    assert RunnerSpec("compile", "cuda", "fp16", "max-autotune", True).label == "compile[max-autotune]+graph-cuda-fp16"
    tuned = RunnerSpec("compile", "cuda", "fp16", channels_last=True, freezing=True)
    assert tuned.label == "compile+nhwc+frozen-cuda-fp16"
    assert tuned.runner_options == {"mode": "default", "cuda_graph": False, "freezing": True, "channels_last": True}
    # options a runner does not declare are dropped: eager PyTorch has no freezing, ONNX Runtime no layout switch
    assert RunnerSpec("torch", "cuda", "fp16", channels_last=True, freezing=True).runner_options == {"channels_last": True}
    assert RunnerSpec("ort", "cpu", "fp32", channels_last=True).label == "ort-cpu-fp32"


@pytest.mark.parametrize("native", [False, True])
def test_emulated_pairs_are_skipped_unless_allowed(native, monkeypatch):
    """bf16 eager PyTorch on a CPU without bf16 instructions (AVX2 only) is emulated, about 10x slower than
    fp32: a skipped row that says how to run it anyway; with AVX512-BF16 or AMX it simply runs."""
    import torch

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    for runtime in ("torch", "torch-ref"):
        reason = RunnerSpec(runtime, "cpu", "bf16").unavailable_reason()
        if native:
            assert reason is None
        else:
            assert "no bf16 instructions" in reason and "--allow-emulated" in reason
        assert RunnerSpec(runtime, "cpu", "bf16", allow_emulated=True).unavailable_reason() is None
        assert RunnerSpec(runtime, "cpu", "fp32").unavailable_reason() is None


@pytest.mark.parametrize("runtime", list(runtime_names()))
def test_every_registered_runtime_has_a_preparation_rule(runtime, make_checkpoint, tmp_path):
    """Each runtime either gives a runner here (not activated) or says why it cannot run."""
    cache = ArtifactCache(make_checkpoint(1), tmp_path)
    spec = RunnerSpec(runtime, "cpu", "fp32")
    if spec.unavailable_reason():
        with pytest.raises(RuntimeUnavailable):
            make_runner(spec, cache, 1, 16, 16)
        return
    if runtime == "aoti":
        pytest.skip("building a .pt2 costs ~40 s; the aoti rule is exercised by test_bench_cli")
    runner, _ = make_runner(spec, cache, 1, 16, 16)
    assert runner.runtime == runtime and runner.name == spec.label and not runner.is_active


def test_work_folder_is_keyed_by_the_weights_and_rebuilds_a_changed_file(make_checkpoint, tmp_path):
    """A work folder reused with other weights must not time the first weights' artifact (it once
    looked artifacts up by format and shape only), and an artifact whose file changed is rebuilt."""
    first_cache = ArtifactCache(make_checkpoint(1, seed=1), tmp_path)
    first = first_cache.artifact("onnx", 1, 16, 16, "cpu", "fp32")
    assert first_cache.seconds_for(first) is not None  # built
    again = ArtifactCache(make_checkpoint(1, seed=1), tmp_path)
    assert again.artifact("onnx", 1, 16, 16, "cpu", "fp32") == first and again.seconds_for(first) is None
    other = ArtifactCache(make_checkpoint(1, seed=2), tmp_path).artifact("onnx", 1, 16, 16, "cpu", "fp32")
    assert other != first and other.is_file() and first.is_file()
    first.write_bytes(first.read_bytes() + b"\0")
    rebuilt = ArtifactCache(make_checkpoint(1, seed=1), tmp_path)
    assert rebuilt.artifact("onnx", 1, 16, 16, "cpu", "fp32") == first and rebuilt.seconds_for(first) is not None
    assert not first.read_bytes().endswith(b"\0")
