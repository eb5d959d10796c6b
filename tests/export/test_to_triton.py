"""Triton model repository: config.pbtxt parsed against Triton's ModelConfig schema, runnable ONNX, atomic swap."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from cli.export import app
from dmphn_core.artifact import INPUT_NAME, OUTPUT_NAME
from dmphn_core.errors import DMPHNError
from export import to_triton
from export.to_triton import preferred_batch_sizes, write_triton_repository
from export.verify import reference_output, verification_inputs
from tests.conftest import TINY_HW, random_model

pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="tritonclient[grpc] not installed (dev extra)")
from google.protobuf import text_format

H, W = TINY_HW


def _parse_config(path):
    # text_format.Parse rejects unknown fields and wrong types: this is the schema check
    return text_format.Parse(path.read_text(), pb2.ModelConfig())


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    model = random_model(1)
    root = tmp_path_factory.mktemp("model_repository")
    lines = write_triton_repository(model, root, model_name="dmphn", backend="onnx", height=H, width=W, max_batch=4,
                                    instances=2, device="gpu", precision="fp32")
    return model, root, lines


def test_config_matches_triton_schema_and_model(repository):
    _, root, lines = repository
    config = _parse_config(root / "dmphn" / "config.pbtxt")
    assert config.name == "dmphn" and config.platform == "onnxruntime_onnx"
    assert config.max_batch_size == 4
    assert [(t.name, t.data_type, list(t.dims)) for t in config.input] == [(INPUT_NAME, pb2.TYPE_FP32, [3, H, W])]
    assert [(t.name, t.data_type, list(t.dims)) for t in config.output] == [(OUTPUT_NAME, pb2.TYPE_FP32, [3, H, W])]
    assert list(config.dynamic_batching.preferred_batch_size) == [2, 4]
    assert config.dynamic_batching.max_queue_delay_microseconds > 0
    assert [(g.kind, g.count) for g in config.instance_group] == [(pb2.ModelInstanceGroup.KIND_GPU, 2)]
    assert any("verification passed" in line for line in lines)


def test_repository_onnx_runs_a_batch_of_two(repository):
    import onnxruntime as ort

    model, root, _ = repository
    path = root / "dmphn" / "1" / "model.onnx"
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert not dims[0].HasField("dim_value")  # Triton owns the batch axis
    assert [d.dim_value for d in dims[1:]] == [3, H, W]
    x = verification_inputs(2, H, W)[1][1]
    y = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run([OUTPUT_NAME], {INPUT_NAME: x})[0]
    assert y.shape == (2, 3, H, W)
    assert np.abs(y - reference_output(model, x)).max() <= 1e-4


def test_rewrite_replaces_only_its_model(tmp_path, repository, monkeypatch):
    # the folder swap is under test, not the export: both writes reuse the module's verified ONNX
    # (a real export per write costs ~5 s; test_cli_writes_repository exports through the same path)
    _, built, _ = repository

    def copy_verified_onnx(model, artifact, **kwargs):
        shutil.copyfile(built / "dmphn" / "1" / "model.onnx", artifact)
        return ["verification passed (copied)"]

    monkeypatch.setattr(to_triton, "_write_model_file", copy_verified_onnx)
    other = tmp_path / "other_model"
    (other / "1").mkdir(parents=True)
    (other / "config.pbtxt").write_text('name: "other_model"\n')
    (other / "1" / "model.onnx").write_bytes(b"someone else's model")
    model = random_model(1)
    write_triton_repository(model, tmp_path, height=H, width=W, max_batch=2, device="gpu", precision="fp32")
    (tmp_path / "dmphn" / "stale.txt").write_text("from the first write")
    write_triton_repository(model, tmp_path, height=H, width=W, max_batch=1, device="cpu", instances=3,
                            precision="fp32")
    config = _parse_config(tmp_path / "dmphn" / "config.pbtxt")
    assert [(g.kind, g.count) for g in config.instance_group] == [(pb2.ModelInstanceGroup.KIND_CPU, 3)]
    assert config.max_batch_size == 1 and list(config.dynamic_batching.preferred_batch_size) == []
    assert not (tmp_path / "dmphn" / "stale.txt").exists()  # the folder was replaced, not merged
    assert (other / "config.pbtxt").read_text() == 'name: "other_model"\n'
    assert (other / "1" / "model.onnx").read_bytes() == b"someone else's model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dmphn", "other_model"]  # no staging leftovers


def test_failed_write_keeps_existing_model(tmp_path, monkeypatch):
    existing = tmp_path / "dmphn"
    (existing / "1").mkdir(parents=True)
    (existing / "config.pbtxt").write_text("old config")

    def fail_verification(model, artifact, **kwargs):
        artifact.write_bytes(b"half written")
        raise DMPHNError("Triton onnx model failed verification")

    monkeypatch.setattr(to_triton, "_write_model_file", fail_verification)
    with pytest.raises(DMPHNError, match="failed verification"):
        write_triton_repository(random_model(1), tmp_path, height=H, width=W, precision="fp32")
    assert (existing / "config.pbtxt").read_text() == "old config"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dmphn"]


def test_cli_wrong_model_fails_verification_and_keeps_existing_model(make_checkpoint, exports_another_model, tmp_path):
    """A genuinely wrong ONNX (differently seeded weights), not a writer that raises: verification must refuse it."""
    import export.to_onnx

    exports_another_model(export.to_onnx, "export_onnx")
    existing = tmp_path / "repo" / "dmphn"
    (existing / "1").mkdir(parents=True)
    (existing / "config.pbtxt").write_text("old config")
    result = CliRunner().invoke(app, ["triton", str(make_checkpoint(1)), "-H", str(H), "-W", str(W), "-o",
                                      str(tmp_path / "repo"), "--max-batch", "2", "--device", "cpu"])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Triton onnx model failed verification"), result.stderr
    assert (existing / "config.pbtxt").read_text() == "old config"
    assert sorted(p.name for p in existing.rglob("*")) == ["1", "config.pbtxt"]
    assert sorted(p.name for p in (tmp_path / "repo").iterdir()) == ["dmphn"]  # no staging leftovers


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"backend": "tf"}, "unknown Triton backend"),
        ({"device": "tpu"}, "unknown instance kind"),
        ({"model_name": "../escape"}, "plain folder name"),
        ({"max_batch": 0}, "--max-batch"),
        ({"instances": 0}, "--instances"),
        ({"backend": "trt", "device": "cpu"}, "GPU instances only"),
        ({"height": 62}, "multiple of 4"),
    ],
)
def test_bad_options_write_nothing(tmp_path, options, message):
    kwargs = {"height": H, "width": W, "precision": "fp32", **options}
    with pytest.raises((DMPHNError, ValueError), match=message):
        write_triton_repository(random_model(1), tmp_path, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_preferred_batch_sizes():
    assert preferred_batch_sizes(1) == []
    assert preferred_batch_sizes(8) == [2, 4, 8]
    assert preferred_batch_sizes(6) == [2, 4, 6]


def test_cli_writes_repository(make_checkpoint, tmp_path):
    result = CliRunner().invoke(app, ["triton", str(make_checkpoint(1)), "-H", str(H), "-W", str(W), "-o",
                                      str(tmp_path / "repo"), "--max-batch", "2", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "tritonserver --model-repository=" in result.stdout
    config = _parse_config(tmp_path / "repo" / "dmphn" / "config.pbtxt")
    assert config.instance_group[0].kind == pb2.ModelInstanceGroup.KIND_CPU
    assert (tmp_path / "repo" / "dmphn" / "1" / "model.onnx").is_file()


# -- python backend: the toolkit's runner inside Triton's Python backend ---------------------

class _FakeTritonUtils:
    """Stands in for ``triton_python_backend_utils`` (only inside Triton's stub) to run model.py here."""

    class Tensor:
        def __init__(self, name, array):
            self.name, self.array = name, array

        def to_dlpack(self):
            import torch

            return torch.utils.dlpack.to_dlpack(torch.from_numpy(self.array))

        @classmethod
        def from_dlpack(cls, name, capsule):
            import torch

            return cls(name, torch.utils.dlpack.from_dlpack(capsule).numpy())

    class TritonError:
        INVALID_ARG = 3

        def __init__(self, message, code=None):
            self.message, self.code = message, code

    class InferenceResponse:
        def __init__(self, output_tensors, error=None):
            self.output_tensors, self.error = output_tensors, error

    @staticmethod
    def get_input_tensor_by_name(request, name):
        return request.get(name)


@pytest.fixture(scope="module")
def python_repository(tmp_path_factory):
    model = random_model(1, seed=3)
    root = tmp_path_factory.mktemp("python_repository")
    lines = write_triton_repository(model, root, backend="python", height=H, width=W, max_batch=4, instances=2,
                                    threads=1)
    return model, root, lines


def _load_python_model(root, monkeypatch):
    import importlib.util
    import json
    import sys

    from google.protobuf import json_format

    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", _FakeTritonUtils)
    spec = importlib.util.spec_from_file_location("dmphn_triton_model", root / "dmphn" / "1" / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = json_format.MessageToDict(_parse_config(root / "dmphn" / "config.pbtxt"), preserving_proto_field_name=True)
    instance = module.TritonPythonModel()
    instance.initialize({"model_config": json.dumps(config), "model_repository": str(root / "dmphn"),
                         "model_version": "1"})
    return instance


def test_python_backend_config(python_repository):
    model, root, lines = python_repository
    config = _parse_config(root / "dmphn" / "config.pbtxt")
    assert config.backend == "python" and config.platform == ""
    assert [(g.kind, g.count) for g in config.instance_group] == [(pb2.ModelInstanceGroup.KIND_CPU, 2)]
    assert [(t.name, list(t.dims)) for t in config.input] == [(INPUT_NAME, [3, H, W])]
    params = {key: value.string_value for key, value in config.parameters.items()}
    assert {k: params[k] for k in ("runtime", "artifact", "precision", "threads")} == {
        "runtime": "ort", "artifact": "model.onnx", "precision": "fp32", "threads": "1"}
    assert json.loads(params["dmphn_config"]) == model.config.to_dict()
    assert sorted(p.name for p in (root / "dmphn" / "1").iterdir()) == ["model.onnx", "model.py"]
    assert any("verification passed" in line for line in lines) and lines[-1].startswith("serve: dmphn-serve ")


def test_python_model_batches_requests_and_rejects_nan_alone(python_repository, monkeypatch):
    model, root, _ = python_repository
    instance = _load_python_model(root, monkeypatch)
    assert instance.fixed_batch is None  # the artifact's batch axis is dynamic
    rng = np.random.default_rng(0)
    first, third = (rng.random((n, 3, H, W), dtype=np.float32) for n in (1, 2))
    nan = rng.random((1, 3, H, W), dtype=np.float32)
    nan[0, 0, 0, 0] = np.nan
    requests = [{INPUT_NAME: _FakeTritonUtils.Tensor(INPUT_NAME, x)} for x in (first, nan, third)]
    responses = instance.execute(requests)
    assert len(responses) == 3
    assert responses[1].error is not None and "NaN" in responses[1].error.message
    assert responses[1].error.code == _FakeTritonUtils.TritonError.INVALID_ARG
    for response, x in ((responses[0], first), (responses[2], third)):
        assert response.error is None
        (tensor,) = response.output_tensors
        assert tensor.name == OUTPUT_NAME and tensor.array.shape == x.shape
        assert np.abs(tensor.array - reference_output(model, x)).max() <= 1e-4
    instance.finalize()


def test_python_model_runs_a_fixed_batch_artifact_in_chunks(python_repository, monkeypatch):
    model, root, _ = python_repository
    instance = _load_python_model(root, monkeypatch)
    seen = []
    infer = instance.runner.infer

    def fixed_two(x):
        seen.append(x.shape[0])
        assert x.shape[0] == 2  # what a static batch-2 artifact would insist on
        return infer(x)

    instance.fixed_batch, instance.runner.infer = 2, fixed_two
    x = np.random.default_rng(1).random((3, 3, H, W), dtype=np.float32)
    (response,) = instance.execute([{INPUT_NAME: _FakeTritonUtils.Tensor(INPUT_NAME, x)}])
    assert seen == [2, 2]  # 3 images: one full chunk, one zero-padded
    assert np.abs(response.output_tensors[0].array - reference_output(model, x)).max() <= 1e-4
    instance.finalize()


def test_python_backend_serves_an_executorch_program_image_by_image(tmp_path, monkeypatch):
    pytest.importorskip("executorch", reason="executorch is not installed (pip install 'dmphn-deploy[edge]')")
    model = random_model(1, seed=4)
    write_triton_repository(model, tmp_path, backend="python", height=H, width=W, max_batch=2, runtime="et",
                            threads=1)
    assert sorted(p.name for p in (tmp_path / "dmphn" / "1").iterdir()) == ["model.pte", "model.py"]
    instance = _load_python_model(tmp_path, monkeypatch)
    assert instance.runner.runtime == "et" and instance.fixed_batch == 1  # a static batch-1 program
    x = np.random.default_rng(2).random((2, 3, H, W), dtype=np.float32)
    (response,) = instance.execute([{INPUT_NAME: _FakeTritonUtils.Tensor(INPUT_NAME, x)}])
    assert response.error is None
    assert np.abs(response.output_tensors[0].array - reference_output(model, x)).max() <= 1e-4
    instance.finalize()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"device": "gpu"}, "CPU instances"),
        ({"precision": "fp16"}, "fp32 graph on CPU"),
        ({"runtime": "openvino"}, "cannot run 'openvino'"),
        ({"threads": -1}, "--threads"),
    ],
)
def test_python_backend_bad_options_write_nothing(tmp_path, options, message):
    with pytest.raises(DMPHNError, match=message):
        write_triton_repository(random_model(1), tmp_path, backend="python", height=H, width=W, **options)
    assert list(tmp_path.iterdir()) == []


def test_backend_names_and_aliases():
    for backend, platform in (("onnxruntime", "onnxruntime_onnx"), ("onnx", "onnxruntime_onnx"),
                              ("tensorrt", "tensorrt_plan"), ("trt", "tensorrt_plan")):
        config = to_triton.triton_config(model_name="m", backend=backend, height=H, width=W, max_batch=2, instances=1,
                                         device="gpu")
        assert config.platform == platform and config.backend == ""
    assert to_triton.canonical_backend("trt") == "tensorrt" and to_triton.canonical_backend("onnx") == "onnxruntime"
