"""ONNX Runtime int8: QDQ static quantization of the static ONNX, run by the `ort` runner at int8."""

from __future__ import annotations

import onnx
import pytest

from dmphn_core.checkpoint import DEMO_CHECKPOINT, load_checkpoint
from dmphn_core.errors import DMPHNError
from export.onnx_int8 import is_quantized, quantize_onnx_int8
from export.to_onnx import export_onnx, read_onnx_metadata
from export.verify import inputs_for, reference_output
from runtimes.compare import psnr_db
from runtimes.onnxruntime import OnnxRuntimeRunner

H, W = 32, 64


def test_qdq_int8_quantizes_runs_and_keeps_metadata(tmp_path):
    model = load_checkpoint(DEMO_CHECKPOINT).build_model()  # trained weights: realistic ranges
    fp32, int8 = tmp_path / "m.onnx", tmp_path / "m_int8.onnx"
    export_onnx(model, fp32, batch=1, height=H, width=W)
    info = quantize_onnx_int8(fp32, int8, calibration_samples=2)
    assert info["format"] == "QDQ" and info["calibration_batches"] == 2
    quantized = onnx.load(str(int8))
    assert is_quantized(quantized) and not is_quantized(onnx.load(str(fp32)))
    metadata = read_onnx_metadata(quantized)
    assert metadata["precision"] == "int8" and metadata["export_shape"] == [1, 3, H, W]
    x = inputs_for("int8", 1, H, W)[0][1]
    with OnnxRuntimeRunner(int8, precision="int8", threads=1) as runner:
        y = runner.infer(x)
    psnr = psnr_db(y, reference_output(model, x))
    assert 20.0 < psnr < 80.0, psnr  # quantized: close, not exact (a broken graph gives < 15 dB)
    with pytest.raises(DMPHNError, match="int8"):
        OnnxRuntimeRunner(int8, precision="fp32").activate()
    with pytest.raises(DMPHNError, match="float"):
        OnnxRuntimeRunner(fp32, precision="int8").activate()


def _adds_reading_only_dequantized(model: onnx.ModelProto) -> int:
    producers = {output: node.op_type for node in model.graph.node for output in node.output}
    return sum(all(producers.get(name) == "DequantizeLinear" for name in node.input)
               for node in model.graph.node if node.op_type == "Add")


def test_default_recipe_keeps_adds_and_image_space_convolutions_float(tmp_path):
    """The OpenVINO int8 export's recipe where ONNX Runtime can run it: Conv inputs only (adds read float
    tensors), not in image space, transposed convolutions float (no int8 kernel on the CPU provider)."""
    model = load_checkpoint(DEMO_CHECKPOINT).build_model()
    fp32, auto, plain = tmp_path / "m.onnx", tmp_path / "auto.onnx", tmp_path / "plain.onnx"
    export_onnx(model, fp32, batch=1, height=H, width=W)
    info = quantize_onnx_int8(fp32, auto, calibration_samples=2)
    plain_info = quantize_onnx_int8(fp32, plain, calibration_samples=2, keep_float="none")
    levels = model.config.levels
    assert len(info["float_convolutions"]) == 2 * levels and plain_info["float_convolutions"] == []
    assert info["quantized"] == "Conv inputs" and plain_info["quantized"] == "all ONNX Runtime quantizes"
    assert info["calibration"].startswith("Percentile") and plain_info["calibration"] == "MinMax"
    quantized, everything = onnx.load(str(auto)), onnx.load(str(plain))
    # the image-space convolutions read float weights (no DequantizeLinear in front of them)
    dequantized = {node.output[0] for node in quantized.graph.node if node.op_type == "DequantizeLinear"}
    convs = {node.name: node for node in quantized.graph.node if node.op_type == "Conv"}
    assert all(convs[name].input[1] not in dequantized for name in info["float_convolutions"])
    assert sum(node.input[1] in dequantized for node in convs.values()) > 0
    # transposed convolutions read float tensors and float weights in the recipe, int8 ones in plain quantization
    transposed = [node for node in quantized.graph.node if node.op_type == "ConvTranspose"]
    assert transposed and not any(name in dequantized for node in transposed for name in node.input)
    plain_transposed = [node for node in everything.graph.node if node.op_type == "ConvTranspose"]
    assert all(node.input[0] in {n.output[0] for n in everything.graph.node if n.op_type == "DequantizeLinear"}
               for node in plain_transposed)
    # every Add reads at least one float tensor in the recipe; plain quantization dequantizes all its inputs
    assert _adds_reading_only_dequantized(quantized) == 0 < _adds_reading_only_dequantized(everything)
    plain_convs = [node for node in everything.graph.node if node.op_type == "Conv"]
    plain_dequantized = {node.output[0] for node in everything.graph.node if node.op_type == "DequantizeLinear"}
    assert all(node.input[1] in plain_dequantized for node in plain_convs)  # plain: every weight int8
    x = inputs_for("int8", 1, H, W)[0][1]
    with OnnxRuntimeRunner(auto, precision="int8", threads=1) as runner:
        assert 20.0 < psnr_db(runner.infer(x), reference_output(model, x)) < 80.0
    with pytest.raises(DMPHNError, match="keep_float"):
        quantize_onnx_int8(fp32, tmp_path / "x.onnx", keep_float="some")


def test_int8_needs_a_static_dmphn_onnx(onnx_dynamic_batch, tmp_path):
    _, dynamic = onnx_dynamic_batch  # the run's shared dynamic-batch DMPHN-1-2 (conftest)
    with pytest.raises(DMPHNError, match="static-shape"):
        quantize_onnx_int8(dynamic, tmp_path / "q.onnx")
    bare = tmp_path / "bare.onnx"
    plain = onnx.load(str(dynamic))
    del plain.metadata_props[:]
    onnx.save(plain, str(bare))
    with pytest.raises(DMPHNError, match="no DMPHN metadata"):
        quantize_onnx_int8(bare, tmp_path / "q.onnx")


def test_calibrated_through_a_dynamic_graph_then_fixed_to_the_export_shape(tmp_path):
    """At 720p ONNX Runtime's calibration of the static graph needs over 24 GB, so the export
    calibrates a dynamic-H/W copy at a small shape and fixes the result to the static shape."""
    model = load_checkpoint(DEMO_CHECKPOINT).build_model()
    fp32, dynamic, int8 = tmp_path / "m.onnx", tmp_path / "dyn.onnx", tmp_path / "q.onnx"
    export_onnx(model, fp32, batch=1, height=2 * H, width=2 * W)
    export_onnx(model, dynamic, batch=1, height=2 * H, width=2 * W, dynamic_hw=True)
    info = quantize_onnx_int8(fp32, int8, calibration_samples=2, calibration_graph=dynamic, calibration_hw=(H, W))
    assert info["calibration_shape"] == [1, 3, H, W] and len(info["float_convolutions"]) == 2 * model.config.levels
    quantized = onnx.load(str(int8))
    dims = [[d.dim_value for d in v.type.tensor_type.shape.dim] for v in (quantized.graph.input[0], quantized.graph.output[0])]
    assert dims == [[1, 3, 2 * H, 2 * W]] * 2 and is_quantized(quantized)
    assert read_onnx_metadata(quantized)["export_shape"] == [1, 3, 2 * H, 2 * W]
    x = inputs_for("int8", 1, 2 * H, 2 * W)[0][1]
    with OnnxRuntimeRunner(int8, precision="int8", threads=1) as runner:
        assert 20.0 < psnr_db(runner.infer(x), reference_output(model, x)) < 80.0
    with pytest.raises(DMPHNError, match="dynamic H and W"):
        quantize_onnx_int8(fp32, tmp_path / "x.onnx", calibration_graph=fp32)
