"""ONNX export: checker, static graph without shape ops, metadata, ORT parity, dynamic axes, onnxslim gate."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from dmphn_core.artifact import INPUT_NAME, OUTPUT_NAME
from dmphn_core.errors import DMPHNError
from export import to_onnx
from export.to_onnx import dynamic_shape_nodes, export_onnx, read_onnx_metadata
from export.verify import reference_output, verification_inputs
from runtimes.onnxruntime import OnnxRuntimeRunner
from tests.conftest import TINY_HW, random_model

H, W = TINY_HW


def _ort(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]


@pytest.fixture(scope="module", params=[1, 4], ids=["DMPHN-1", "DMPHN-1-2-4-8"])
def static_export(request, tmp_path_factory):
    model = random_model(request.param)
    path = tmp_path_factory.mktemp(f"onnx_l{request.param}") / "model.onnx"
    info = export_onnx(model, path, batch=1, height=H, width=W)
    return model, path, info


@pytest.fixture(scope="module")
def dynamic_export(tmp_path_factory):
    model = random_model("1-2")
    path = tmp_path_factory.mktemp("onnx_dyn") / "model.onnx"
    info = export_onnx(model, path, batch=1, height=H, width=W, dynamic_batch=True, dynamic_hw=True)
    return model, path, info


def test_static_export_passes_checker_and_is_one_file(static_export):
    _, path, info = static_export
    loaded = onnx.load(str(path))
    onnx.checker.check_model(loaded, full_check=True)
    assert {p.name for p in path.parent.iterdir()} == {path.name}  # no external-data file beside it
    assert not any(init.data_location == onnx.TensorProto.EXTERNAL for init in loaded.graph.initializer)
    assert loaded.opset_import[0].version == info["opset"] == 18
    assert info["file_bytes"] == path.stat().st_size


def test_static_export_has_no_dynamic_shape_ops(static_export):
    model, path, info = static_export
    loaded = onnx.load(str(path))
    op_types = {node.op_type for node in loaded.graph.node}
    assert not op_types & {"Shape", "Gather", "Size", "Range", "ConstantOfShape"}, op_types
    assert info["dynamic_shape_ops"] == 0 and dynamic_shape_nodes(loaded) == []
    # the graph is the network itself: one Conv per nn.Conv2d, one ConvTranspose per nn.ConvTranspose2d
    assert info["op_counts"]["Conv"] == sum(isinstance(m, nn.Conv2d) for m in model.modules())
    assert info["op_counts"]["ConvTranspose"] == sum(isinstance(m, nn.ConvTranspose2d) for m in model.modules())
    assert info["op_counts"] == dict(Counter(n.op_type for n in loaded.graph.node))
    dims = [d.dim_value for d in loaded.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, H, W]


def test_metadata_round_trips(static_export):
    model, path, info = static_export
    meta = read_onnx_metadata(onnx.load(str(path)))
    assert meta is not None
    assert meta["config"] == model.config.to_dict()
    assert meta["size_block_hw"] == list(model.geometry.size_block)
    assert meta["input"]["name"] == INPUT_NAME and meta["output"]["name"] == OUTPUT_NAME
    assert meta["input"]["layout"] == "NCHW" and meta["input"]["range"] == [0.0, 1.0]
    assert meta["export_shape"] == [1, 3, H, W]
    assert meta["onnx"]["opset"] == 18 and meta["onnx"]["onnx"] == onnx.__version__
    assert meta["onnx"]["onnxslim"] and meta["onnx"]["simplified"] == info["simplify"]["kept"]
    with OnnxRuntimeRunner(path) as runner:  # the runner reads the same metadata back
        assert runner.model_config == model.config
        assert runner.input_shape == (1, 3, H, W)


def test_ort_matches_pytorch(static_export):
    model, path, info = static_export
    assert info["simplify"]["kept"], info["simplify"]  # onnxslim output passed its parity gate here
    for label, x in verification_inputs(1, H, W):
        diff = np.abs(_ort(path, x) - reference_output(model, x))
        assert diff.max() <= 1e-4, (label, diff.max())


def test_dynamic_batch_and_hw_run_at_other_shapes(dynamic_export):
    model, path, info = dynamic_export
    loaded = onnx.load(str(path))
    onnx.checker.check_model(loaded, full_check=True)
    dims = loaded.graph.input[0].type.tensor_type.shape.dim
    assert [d.HasField("dim_value") for d in dims] == [False, True, False, False]
    assert info["dynamic_shape_ops"] > 0  # H/W arithmetic has to happen at run time now
    bh, bw = model.geometry.size_block
    for batch, height, width in [(1, H, W), (3, H + bh, W + 2 * bw)]:
        x = torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(batch)).numpy()
        y = _ort(path, x)
        assert y.shape == x.shape
        assert np.abs(y - reference_output(model, x)).max() <= 1e-4
    meta = read_onnx_metadata(loaded)
    assert meta["input"]["shape"] == ["batch", 3, "height", "width"]
    with OnnxRuntimeRunner(path) as runner:
        assert runner.input_shape == (None, 3, None, None)
        with pytest.raises(DMPHNError, match=f"multiple of {bw}"):  # sizes off the block are refused up front
            runner.infer(np.zeros((1, 3, H, W + bw // 2), np.float32))


def test_static_runner_rejects_other_shape(static_export):
    _, path, _ = static_export
    with OnnxRuntimeRunner(path) as runner, pytest.raises(DMPHNError, match="built for input 1x3x64x128"):
        runner.infer(np.zeros((2, 3, H, W), np.float32))


def test_opset_below_17_is_refused(tmp_path):
    with pytest.raises(DMPHNError, match="opset must be >= 17"):
        export_onnx(random_model(1), tmp_path / "m.onnx", batch=1, height=H, width=W, opset=16)
    assert not (tmp_path / "m.onnx").exists()


def test_opset_17_exports(tmp_path):
    model = random_model(1)
    path = tmp_path / "m.onnx"
    export_onnx(model, path, batch=1, height=H, width=W, opset=17, simplify=False)
    assert onnx.load(str(path)).opset_import[0].version == 17
    x = verification_inputs(1, H, W)[1][1]
    assert np.abs(_ort(path, x) - reference_output(model, x)).max() <= 1e-4


def test_simplified_graph_dropped_when_parity_breaks(tmp_path, monkeypatch):
    def broken_simplify(model: onnx.ModelProto) -> onnx.ModelProto:
        out = onnx.ModelProto()
        out.CopyFrom(model)
        weight = next(init for init in out.graph.initializer if len(init.dims) == 4)
        array = onnx.numpy_helper.to_array(weight) * 1.5  # a "simplification" that changes the maths
        weight.CopyFrom(onnx.numpy_helper.from_array(array, weight.name))
        return out

    monkeypatch.setattr(to_onnx, "_simplify", broken_simplify)
    model = random_model(1)
    info = export_onnx(model, tmp_path / "m.onnx", batch=1, height=H, width=W)
    assert info["simplify"]["kept"] is False
    assert info["simplify"]["parity_max_abs"] > to_onnx.SIMPLIFY_MAX_ABS
    assert "moved" in info["simplify"]["reason"]
    x = verification_inputs(1, H, W)[0][1]
    assert np.abs(_ort(tmp_path / "m.onnx", x) - reference_output(model, x)).max() <= 1e-4
    assert read_onnx_metadata(onnx.load(str(tmp_path / "m.onnx")))["onnx"]["simplified"] is False


def test_simplifier_crash_keeps_exported_graph(tmp_path, monkeypatch):
    def crash(model):
        raise RuntimeError("boom")

    monkeypatch.setattr(to_onnx, "_simplify", crash)
    info = export_onnx(random_model(1), tmp_path / "m.onnx", batch=1, height=H, width=W)
    assert info["simplify"]["kept"] is False and "boom" in info["simplify"]["reason"]
    onnx.checker.check_model(onnx.load(str(tmp_path / "m.onnx")), full_check=True)


def test_dynamic_shape_nodes_counts_shape_arithmetic_only():
    helper, tp = onnx.helper, onnx.TensorProto
    graph = helper.make_graph(
        [
            helper.make_node("Shape", ["x"], ["s"]),
            helper.make_node("Gather", ["s", "idx"], ["n"], axis=0),
            helper.make_node("Concat", ["n", "tail"], ["shape"], axis=0),
            helper.make_node("Reshape", ["x", "shape"], ["r"]),
            helper.make_node("Relu", ["r"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", tp.FLOAT, ["b", 4])],
        [helper.make_tensor_value_info("y", tp.FLOAT, None)],
        [helper.make_tensor("idx", tp.INT64, [1], [0]), helper.make_tensor("tail", tp.INT64, [2], [2, 2])],
    )
    nodes = dynamic_shape_nodes(helper.make_model(graph))
    assert [node.op_type for node in nodes] == ["Shape", "Gather", "Concat"]


@pytest.mark.skipif(shutil.which("polygraphy") is None and not Path(sys.executable).with_name("polygraphy").exists(),
                    reason="polygraphy CLI not installed (pip install -e .[dev])")
def test_polygraphy_agrees_with_pytorch(tmp_path):
    """An independent tool: polygraphy runs the .onnx in ORT and compares with saved PyTorch outputs."""
    from polygraphy.comparator import RunResults
    from polygraphy.json import save_json

    model = random_model(1, seed=3)
    path = tmp_path / "model.onnx"
    export_onnx(model, path, batch=1, height=H, width=W)
    inputs = verification_inputs(1, H, W)
    save_json([{INPUT_NAME: x} for _, x in inputs], tmp_path / "inputs.json")

    def save_outputs(name: str, offset: float) -> Path:
        results = RunResults()
        results.add([{OUTPUT_NAME: reference_output(model, x) + offset} for _, x in inputs], runner_name="pytorch")
        results.save(str(tmp_path / name))
        return tmp_path / name

    polygraphy = shutil.which("polygraphy") or str(Path(sys.executable).with_name("polygraphy"))

    def run(outputs: Path) -> subprocess.CompletedProcess:
        return subprocess.run(
            [polygraphy, "run", str(path), "--onnxrt", "--load-inputs", str(tmp_path / "inputs.json"),
             "--load-outputs", str(outputs), "--atol", "1e-4", "--rtol", "0"],
            capture_output=True, text=True, timeout=120, check=False,
        )

    good = run(save_outputs("pytorch.json", 0.0))
    assert good.returncode == 0, good.stdout[-2000:] + good.stderr[-2000:]
    assert "PASSED" in good.stdout + good.stderr
    # negative control: the same command must fail against outputs off by 1e-3
    bad = run(save_outputs("wrong.json", 1e-3))
    assert bad.returncode != 0
