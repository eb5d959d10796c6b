"""Triton model repository: config.pbtxt parsed against Triton's ModelConfig schema, runnable ONNX, atomic swap."""

from __future__ import annotations

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


def test_rewrite_replaces_only_its_model(tmp_path):
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
