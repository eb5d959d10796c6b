"""ExecuTorch export: delegation check, int8 keep-float recipe, fp16, the CLI, nothing half-written."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("executorch", reason="executorch is not installed (pip install 'dmphn-deploy[edge]')")

from dmphn_core.artifact import read_metadata  # noqa: E402
from dmphn_core.errors import DMPHNError  # noqa: E402
from export.exporter import ExportFailed, export_verified, exporter_for  # noqa: E402
from export.to_executorch import (  # noqa: E402
    _lower,
    _with_percentile_ranges,
    export_executorch,
    image_space_convolutions,
    int8_residual_adds,
    output_block_convolutions,
)
from export.verify import inputs_for, reference_output  # noqa: E402
from runtimes.compare import psnr_db  # noqa: E402
from runtimes.executorch import ExecuTorchRunner  # noqa: E402
from tests.conftest import random_model  # noqa: E402

H, W = 32, 64


def _demo_model():
    from dmphn_core.checkpoint import DEMO_CHECKPOINT, load_checkpoint

    return load_checkpoint(DEMO_CHECKPOINT).build_model()


def test_exporter_is_declared_for_the_cpu():
    exporter = exporter_for("executorch")
    assert exporter.runtime == "et" and exporter.suffix == ".pte" and exporter.devices == ("cpu",)
    assert exporter.precisions == ("fp32", "fp16", "int8")


def test_a_graph_with_ops_xnnpack_lacks_is_refused_naming_them():
    class Cumulative(torch.nn.Module):
        def forward(self, x):
            return torch.cumsum(x, dim=1) + 1.0

    program = torch.export.export(Cumulative(), (torch.rand(1, 3, 4, 4),))
    with pytest.raises(DMPHNError, match=r"not fully delegated to XNNPACK: .*cumsum"):
        _lower(program, {"model": "none"})


def test_image_space_convolutions_are_the_first_and_last_of_each_level():
    model = random_model("1-2", seed=1)
    graph = torch.export.export(model.eval(), (torch.rand(1, 3, H, W),)).module()
    # each level: the encoder's first convolution (3 -> C) and the decoder's last (C -> 3)
    assert len(image_space_convolutions(graph)) == 2 * model.config.levels


def test_int8_keeps_the_recipes_float_parts_float(tmp_path):
    model = _demo_model()
    path = tmp_path / "int8.pte"
    info = export_executorch(model, path, batch=1, height=H, width=W, precision="int8", calibration_samples=2)
    quant = info["quantization"]
    assert quant["keep_float"] == "auto" and quant["float_op_types"] == ["add"]
    assert len(quant["int8_adds"]) == 6  # DMPHN-1: the level-1 encoder's six residual blocks
    # the image-space convolutions (2 a level) and the level-1 decoder's last residual block (2)
    assert len(quant["float_convolutions"]) == 2 * model.config.levels + 2
    assert quant["calibration_shape"] == [1, 3, H, W] and quant["calibration_batches"] == 2
    assert quant["calibration"].startswith("Percentile")
    assert read_metadata(path)["quantization"]["float_convolutions"] == quant["float_convolutions"]
    plain = tmp_path / "plain.pte"
    export_executorch(model, plain, batch=1, height=H, width=W, precision="int8", calibration_samples=2,
                      keep_float="none")
    x = inputs_for("int8", 1, H, W)[0][1]
    ref = reference_output(model, x)
    scores = {}
    for name, artifact in (("auto", path), ("none", plain)):
        with ExecuTorchRunner(artifact, precision="int8") as runner:
            scores[name] = psnr_db(runner.infer(x), ref)
    # quantized, so not float-exact, yet the same picture (a broken graph gives < 15 dB)
    assert all(20.0 < score < 80.0 for score in scores.values()), scores
    # the quantized-everything program is smaller: more int8 weights
    assert plain.stat().st_size < path.stat().st_size


def test_the_output_block_is_the_level_1_decoders_last_residual_block():
    model = random_model("1-2", seed=1)
    graph = torch.export.export(model.eval(), (torch.rand(1, 3, H, W),)).module()
    names = output_block_convolutions(graph, model)
    modules = {node.name: list(node.meta["nn_module_stack"].values())[-1][0] for node in graph.graph.nodes
               if node.meta.get("nn_module_stack")}
    assert [modules[name] for name in names] == ["decoders.0.layers.7.body.0", "decoders.0.layers.7.body.2"]
    assert not set(names) & set(image_space_convolutions(graph))


@pytest.mark.parametrize("wrapped", [False, True])
def test_int8_adds_are_the_level_1_encoders_and_the_higher_levels_decoders(wrapped):
    from runtimes.torch_utils import Float32IO

    model = random_model("1-2-4", seed=1).eval()
    module = Float32IO(model, torch.float32).eval() if wrapped else model  # the exporter wraps it
    graph = torch.export.export(module, (torch.rand(1, 3, H, W),)).module()
    names = int8_residual_adds(graph, model)
    blocks = sorted(list(node.meta["nn_module_stack"].values())[-1][0].removeprefix("model.")
                    for node in graph.graph.nodes if node.name in names)
    residual = [f"layers.{i}" for i in (1, 2, 4, 5, 7, 8)]  # encoder: conv, 2 blocks, conv, 2 blocks, ...
    expected = [f"encoders.0.{layer}" for layer in residual]
    expected += [f"decoders.{level}.layers.{i}" for level in (1, 2) for i in (0, 1, 3, 4, 6, 7)]
    assert blocks == sorted(expected)
    # the adds between levels (image + residual, features + features) are never among them
    all_adds = [node for node in graph.graph.nodes if "add" in str(node.target)]
    assert len(all_adds) > len(names)
    # and the filter quantizes exactly these adds, while the float convolutions stay float
    from export.to_executorch import _keep_float_filter

    float_convs = set(output_block_convolutions(graph, model))
    keep = _keep_float_filter(float_convs, set(names))
    assert {node.name for node in all_adds if keep(node)} == set(names)
    assert not any(keep(node) for node in graph.graph.nodes if node.name in float_convs)


def test_int8_activation_ranges_leave_out_rare_outliers_but_keep_the_bulk():
    """The recipe's observer: a few extreme values do not set the range (they would waste the 8 bits),
    the bulk of every batch does, and the widest batch wins."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import get_symmetric_quantization_config

    config = _with_percentile_ranges(get_symmetric_quantization_config(is_per_channel=True))
    observer = config.input_activation.observer_or_fake_quant_ctr()
    bulk = torch.linspace(-1.0, 2.0, 400_000)
    observer(torch.cat([bulk, torch.tensor([-50.0, 80.0])]))  # two outliers in 400 002 values
    assert -1.01 < observer.min_val.item() < -0.99 and 1.99 < observer.max_val.item() < 2.01
    observer(torch.linspace(-0.5, 3.0, 400_000))  # a brighter batch widens the top, not the bottom
    assert -1.01 < observer.min_val.item() < -0.99 and 2.99 < observer.max_val.item() < 3.01
    scale, _ = observer.calculate_qparams()
    assert 0.015 < scale.item() < 0.017  # (3 - -1) / 255: the outliers did not stretch the steps


def test_fp16_passes_its_bar_and_a_failed_verification_writes_nothing(tmp_path):
    model = random_model(1, seed=2)
    info, verification = export_verified("executorch", model, tmp_path / "half.pte", batch=1, height=H, width=W,
                                         precision="fp16", log=None)
    assert verification.passed and info["precision"] == "fp16"
    assert read_metadata(tmp_path / "half.pte")["precision"] == "fp16"
    with pytest.raises(ExportFailed, match="was not written"):
        export_verified("executorch", model, tmp_path / "strict.pte", batch=1, height=H, width=W,
                        precision="fp16", min_psnr=300.0, log=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["half.pte"]


def test_bad_settings_are_one_line_errors(tmp_path):
    model = random_model(1)
    with pytest.raises(DMPHNError, match="unknown or unsupported executorch precision 'bf16'"):
        export_verified("executorch", model, tmp_path / "m.pte", batch=1, height=H, width=W, precision="bf16")
    with pytest.raises(DMPHNError, match="keep_float must be auto or none"):
        export_executorch(model, tmp_path / "m.pte", batch=1, height=H, width=W, precision="int8", keep_float="some")
    assert not list(tmp_path.iterdir())
