"""The artifact contract: formats from file names, metadata read back from every format."""

import json

import pytest

from dmphn_core.artifact import (
    FORMATS,
    OPENVINO_RT_INFO_KEY,
    artifact_metadata,
    config_of,
    detect_format,
    metadata_json,
    read_metadata,
    sidecar_path,
)
from dmphn_core.errors import DMPHNError
from dmphn_core.model import DMPHNConfig
from tests.conftest import TINY_HW, random_model

H, W = TINY_HW


def test_formats_from_suffixes():
    assert detect_format("m.onnx") == "onnx" and detect_format("m.ONNX") == "onnx"
    assert detect_format("m.ts") == "torchscript" and detect_format("m.pt2") == "aoti"
    assert detect_format("m.engine") == "tensorrt" == detect_format("m.plan")
    assert detect_format("m.xml") == "openvino"
    assert set(FORMATS) >= {"checkpoint", "onnx", "torchscript", "aoti", "tensorrt", "openvino"}
    with pytest.raises(DMPHNError, match="suffix '.bin'"):
        detect_format("m.bin")


def test_a_torchscript_archive_named_pt_is_torchscript_and_its_metadata_reads_back(tmp_path):
    from export.to_torchscript import export_torchscript

    path = tmp_path / "m.pt"
    export_torchscript(random_model(1), path, batch=1, height=32, width=32)
    assert detect_format(path) == "torchscript"
    metadata = read_metadata(path)
    assert metadata["export_shape"] == [1, 3, 32, 32] and config_of(metadata) == DMPHNConfig(levels=1)


def test_onnx_metadata_reads_back_without_onnxruntime(tmp_path):
    from export.to_onnx import export_onnx

    path = tmp_path / "m.onnx"
    export_onnx(random_model(2), path, batch=2, height=H, width=W)
    metadata = read_metadata(path)
    assert metadata["export_shape"] == [2, 3, H, W] and config_of(metadata) == DMPHNConfig(levels=2)


@pytest.mark.slow  # the run's AOTInductor package: a 30-70 s compile
def test_aoti_metadata_reads_back_from_the_package(aoti_package):
    path, model = aoti_package
    metadata = read_metadata(path)
    assert config_of(metadata) == model.config and metadata["aoti"]["device"] == "cpu"


def test_tensorrt_sidecar_and_openvino_rt_info(tmp_path):
    meta = artifact_metadata(DMPHNConfig(levels=4), batch=1, height=H, width=W, precision="fp16")
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"opaque engine bytes")
    assert read_metadata(engine) is None  # no sidecar: the engine still runs, config unknown
    sidecar_path(engine).write_text(json.dumps(meta))
    assert read_metadata(engine)["precision"] == "fp16"

    ir = tmp_path / "m.xml"
    outer, inner = OPENVINO_RT_INFO_KEY
    value = metadata_json(meta).replace('"', "&quot;")
    ir.write_text(f'<?xml version="1.0"?>\n<net name="m" version="11"><layers/><rt_info><{outer}><{inner} value="{value}"/>'
                  f"</{outer}></rt_info></net>\n")
    assert config_of(read_metadata(ir)) == DMPHNConfig(levels=4)


def test_unreadable_metadata_is_a_one_line_error(tmp_path):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"x")
    sidecar_path(engine).write_text("{not json")
    with pytest.raises(DMPHNError, match="not valid JSON"):
        read_metadata(engine)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a protobuf at all \xff\xfe")
    with pytest.raises(DMPHNError, match="cannot read ONNX model"):
        read_metadata(junk)
    with pytest.raises(DMPHNError, match="model not found"):
        read_metadata(tmp_path / "absent.onnx")
