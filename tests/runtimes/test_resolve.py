"""A model argument (a file) -> the runner that runs it."""

import pytest
import torch

from dmphn_core.errors import DMPHNError
from dmphn_core.model import DMPHNConfig
from runtimes import resolve
from runtimes.onnxruntime import OnnxRuntimeRunner
from runtimes.resolve import resolve_runner, runtime_for_path
from runtimes.torch_eager import TorchReferenceRunner, TorchRunner
from runtimes.torchscript import TorchScriptRunner
from tests.conftest import random_model


def test_torchscript_archive_under_checkpoint_suffix_runs_as_torchscript(tmp_path):
    from export.to_torchscript import export_torchscript

    path = tmp_path / "m1_32x32.pt"  # a TorchScript archive under the checkpoint suffix
    export_torchscript(random_model(1, seed=5), path, batch=1, height=32, width=32)
    assert isinstance(resolve_runner(path, device="cpu"), TorchScriptRunner)


def test_artifact_runtime_given_a_checkpoint_says_what_to_export(make_checkpoint):
    with pytest.raises(DMPHNError, match=r"runs onnx files.*dmphn-export onnx"):
        resolve_runner(make_checkpoint(1), "ort", "cpu")


# -- resolving a model argument -------------------------------------------------------


def test_resolve_checkpoint_and_runtime_override(make_checkpoint):
    path = make_checkpoint(1)
    runner = resolve_runner(path, device="cpu")
    assert isinstance(runner, TorchRunner) and runner.precision == "fp32"
    with runner:
        assert runner.model_config == DMPHNConfig(levels=1)
    assert isinstance(resolve_runner(path, "torch-ref", "cpu"), TorchReferenceRunner)


def test_runtime_from_suffix(tmp_path):
    assert runtime_for_path("m.onnx") == "ort"
    assert runtime_for_path("m.pt2") == "aoti"
    assert runtime_for_path("m.engine") == "trt" and runtime_for_path("m.plan") == "trt"
    assert runtime_for_path("m.ts") == "torchscript"
    assert runtime_for_path(tmp_path / "not_a_zip.pt") == "torch"
    with pytest.raises(DMPHNError, match="suffix"):
        runtime_for_path("m.bin")


def test_corrupt_onnx_fails_at_activation_with_one_line(tmp_path):
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"not onnx")
    runner = resolve_runner(path, device="cpu")
    assert isinstance(runner, OnnxRuntimeRunner)
    with pytest.raises(DMPHNError, match="cannot load ONNX model"):
        runner.activate()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [("missing.pt", None, "model not found"), ("junk.pt", b"junk", "cannot read checkpoint"), ("m.xyz", b"x", "suffix")],
)
def test_resolve_bad_model_files(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DMPHNError, match=message):
        resolve_runner(path, device="cpu")


def test_resolve_unknown_runtime_and_unavailable_device(make_checkpoint):
    path = make_checkpoint(1)
    with pytest.raises(DMPHNError, match="unknown runtime"):
        resolve_runner(path, "tensorflow", "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(DMPHNError, match="CUDA"):
            resolve_runner(path, device="cuda")


def test_missing_demo_checkpoint_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(resolve, "DEMO_CHECKPOINT", tmp_path / "absent.pt")
    with pytest.raises(DMPHNError, match="no model given and the demo checkpoint is missing"):
        resolve_runner(None, device="cpu")
