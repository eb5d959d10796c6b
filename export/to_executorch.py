"""DMPHN -> ExecuTorch program (``.pte``) lowered to XNNPACK: fp32, fp16 or int8.

A static ``torch.export`` at the export shape (the artifact cache keys by shape, so every size
gets its own program), lowered by ``to_edge_transform_and_lower`` with the
``XnnpackPartitioner``. The whole graph must land in XNNPACK: a program with operators left
to ExecuTorch's portable kernels is refused, naming them (they would run orders of magnitude
slower, and the C++ backend links only XNNPACK and the optimized kernels).

Precisions:

* fp32: the model as is.
* fp16: the model in float16 behind float32 input and output (:class:`Float32IO`); XNNPACK
  computes in fp16 natively only where the CPU has fp16 arithmetic (ARM v8.2+, AVX512-FP16).
  The two casts at the input and output are the only operators outside the delegate
  (:data:`FP16_IO_CASTS`: XNNPACK has no conversion node); ExecuTorch's kernels run them.
* int8: PT2E post-training quantization with ExecuTorch's ``XNNPACKQuantizer`` (per-channel
  symmetric weights, per-tensor activations), calibrated on :func:`export.calibration.calibration_batches`
  (the inputs of the other int8 exporters) at :func:`export.calibration.calibration_shape`
  through a copy of the graph with dynamic H and W, then exported again at the export shape.
  ``keep_float="auto"`` starts from the recipe of the other int8 exporters: the image-space
  convolutions (3 channels in or out) stay float; here also the two convolutions of the level-1
  decoder's last residual block (:func:`output_block_convolutions`); the residual adds stay float
  except those of the level-1 encoder and of the decoders of levels 2 and up, which run in int8
  (:func:`int8_residual_adds`); activation ranges are the
  99.999th percentile of the calibration values (:data:`export.calibration.ACTIVATION_PERCENTILE`),
  not the quantizer's default HistogramObserver; ``"none"`` quantizes all the quantizer can with
  its defaults (faster, but 37.9 dB against fp32 on the authors' model in the issue's probe).
  Measured on the authors' DMPHN-1-2-4-8, PSNR vs eager fp32 on their four GoPro frames at
  720x1280 (2-core AMX Xeon, 2026-12-06; default calibration): this recipe 43.32 / 45.34 / 43.41 /
  41.47 dB (every residual add float: 43.54 / 46.10 / 43.93 / 41.47, 4-7 % slower);
  without the output block float 39.30 / 40.10 / 39.44 / 38.39; with HistogramObserver
  ranges instead 40.48 / 35.84 / 33.64 / 37.08 (they fit the calibration views and clip on the
  brighter, sharper frames; centre 352x640 crops, 40.45-42.05 dB, hid that); MinMaxObserver
  36.6-39.1 dB at 352x640. XNNPACK runs a static int8 convolution only with an int8 output, so
  unlike ONNX Runtime every other convolution is int8 here, the adds reading dequantized outputs.
  Dynamic activation quantization (``is_dynamic``) scores 50 dB but quantizes only the
  convolutions not followed by a ReLU (about half): 1384 vs 1010 ms at 352x640.
  Only the float convolutions dynamically quantized (the rest as here) score worse: the four
  output convolutions alone 38.08 dB on the worst frame at 352x640.

Metadata: the program carries the artifact metadata JSON as a constant method
(:data:`dmphn_core.artifact.EXECUTORCH_METADATA_METHOD`) that returns it as a string, so
Python and C++ read it from the ``.pte`` itself (:func:`dmphn_core.artifact.read_metadata`).
"""

from __future__ import annotations

import copy
import os
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from dmphn_core.artifact import EXECUTORCH_METADATA_METHOD, artifact_metadata, metadata_json
from dmphn_core.errors import DMPHNError, exception_line
from dmphn_core.fileio import write_bytes_atomic
from dmphn_core.model import DMPHN, IMAGE_CHANNELS, ResBlock
from runtimes.executorch import check_executorch_available, executorch_version
from runtimes.torch_utils import Float32IO

from .calibration import (
    ACTIVATION_PERCENTILE,
    DEFAULT_SAMPLES,
    calibration_batches,
    calibration_shape,
    check_keep_float,
)
from .exporter import Exporter

PRECISIONS = ("fp32", "fp16", "int8")
#: the one delegate a lowered DMPHN program may call
DELEGATE = "XnnpackBackend"
#: what an fp16 program may run outside the delegate: the float32 <-> float16 casts of its input
#: and output (XNNPACK has no such conversion node; ExecuTorch's kernels do it, once per call)
FP16_IO_CASTS = ("_to_dim_order_copy.default",)


def export_executorch(
    model: DMPHN,
    path: str | os.PathLike,
    *,
    batch: int,
    height: int,
    width: int,
    precision: str = "fp32",
    calibration_dir: str | os.PathLike | None = None,
    calibration_samples: int = DEFAULT_SAMPLES,
    keep_float: str = "auto",
) -> dict[str, Any]:
    """Write the ``.pte`` for (batch, 3, height, width) to ``path`` (atomically); returns the export info."""
    if precision not in PRECISIONS:
        raise DMPHNError(f"unknown ExecuTorch precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    check_executorch_available()
    check_keep_float(keep_float)
    model.geometry.check_size(height, width)
    dtype = torch.float16 if precision == "fp16" else torch.float32
    module = Float32IO(copy.deepcopy(model).cpu().eval(), dtype).eval()
    example = torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(0))
    info: dict[str, Any] = {"executorch": executorch_version(), "precision": precision, "delegate": DELEGATE,
                            "export_shape": [batch, 3, height, width]}
    begin = time.perf_counter()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # export's and the quantizer's deprecation notices; failures still raise
        if precision == "int8":
            module, quant_info = _quantized_module(model, module, batch, height, width, calibration_dir,
                                                   calibration_samples, keep_float)
            info["quantization"] = quant_info
        program = _export(module, example, model.config.name)
        metadata = artifact_metadata(model.config, batch=batch, height=height, width=width, precision=precision,
                                     executorch={"version": executorch_version(), "delegate": DELEGATE},
                                     **({"quantization": info["quantization"]} if "quantization" in info else {}))
        lowered = _lower(program, metadata, allowed=FP16_IO_CASTS if precision == "fp16" else ())
        data = lowered.to_executorch().buffer
    write_bytes_atomic(path, data)
    info["export_seconds"] = round(time.perf_counter() - begin, 2)
    info["file_bytes"] = len(data)
    info["log_lines"] = [
        f"executorch {executorch_version()}: {model.config.name} {batch}x3x{height}x{width} {precision}, "
        f"{'delegated to XNNPACK but the input/output casts' if precision == 'fp16' else 'fully delegated to XNNPACK'} "
        f"in {info['export_seconds']:.1f}s, {len(data) / 2**20:.1f} MiB; metadata in method {EXECUTORCH_METADATA_METHOD!r}",
    ]
    if "quantization" in info:
        quant = info["quantization"]
        info["log_lines"].append(
            f"  int8 by PT2E XNNPACKQuantizer on {quant['calibration_batches']} calibration batch(es) of "
            f"{'x'.join(map(str, quant['calibration_shape']))} from {quant['calibration_source']}; float: "
            f"{', '.join(quant['float_op_types']) or 'no op types'} (but {len(quant['int8_adds'])} residual adds) and "
            f"{len(quant['float_convolutions'])} convolution(s) (image-space, and the level-1 decoder's last residual block)")
    return info


def _export(module: torch.nn.Module, example: torch.Tensor, name: str, dynamic_shapes=None):
    try:
        return torch.export.export(module, (example,), dynamic_shapes=dynamic_shapes)
    except Exception as exc:  # noqa: BLE001 - export raises many kinds; the user gets one line
        first = exception_line(exc)
        raise DMPHNError(f"torch.export failed for {name}: {first}") from exc


def _lower(program, metadata: dict[str, Any], allowed: tuple[str, ...] = ()):
    """XNNPACK-lowered edge program with the metadata method; refused unless fully delegated (but ``allowed``)."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()],
                                          constant_methods={EXECUTORCH_METADATA_METHOD: metadata_json(metadata)})
    leftover = [name for name in undelegated_ops(lowered.exported_program().graph_module)
                if not name.endswith(allowed)]
    if leftover:
        raise DMPHNError(f"the ExecuTorch program is not fully delegated to XNNPACK: {', '.join(leftover)} would "
                         f"run on portable kernels")
    return lowered


def undelegated_ops(graph_module: torch.fx.GraphModule) -> list[str]:
    """Sorted names of the operators of a lowered graph that run outside a delegate (``getitem`` aside)."""
    import operator

    names = set()
    for node in graph_module.graph.nodes:
        if node.op != "call_function" or node.target is operator.getitem:
            continue
        if type(node.target).__name__ == "ExecutorchCallDelegate":  # the call into XNNPACK itself
            continue
        names.add(getattr(node.target, "__name__", str(node.target)))
    return sorted(names)


# -- int8 --------------------------------------------------------------------------------

_ADD_TARGETS = ("aten.add.Tensor", "aten.add_.Tensor")
_CONV_TARGETS = ("aten.conv2d.default", "aten.conv_transpose2d.input", "aten.convolution.default")


def _quantized_module(model: DMPHN, module: torch.nn.Module, batch: int, height: int, width: int, calibration_dir,
                      calibration_samples: int, keep_float: str) -> tuple[torch.nn.Module, dict[str, Any]]:
    """PT2E: prepare a dynamic-H/W graph, calibrate at the calibration shape, convert; (module, info)."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    bh, bw = model.geometry.size_block
    ch, cw = calibration_shape(height, width, (bh, bw))
    example = torch.rand(batch, 3, ch, cw, generator=torch.Generator().manual_seed(0))
    graph = _export(module, example, model.config.name, dynamic_shapes=_dynamic_hw(bh, bw, height, width)).module()
    quantizer = XNNPACKQuantizer()
    config = get_symmetric_quantization_config(is_per_channel=True)
    float_convs: list[str] = []
    int8_adds: list[str] = []
    if keep_float == "auto":
        float_convs = image_space_convolutions(graph) + output_block_convolutions(graph, model)
        int8_adds = int8_residual_adds(graph, model)
        config = _with_percentile_ranges(config)
        quantizer.set_filter_function(_keep_float_filter(set(float_convs), set(int8_adds)))
    quantizer.set_global(config)
    prepared = prepare_pt2e(graph, quantizer)
    calibration = calibration_batches(batch, ch, cw, calibration_dir, calibration_samples)
    for images in calibration:
        prepared(torch.from_numpy(images))
    converted = convert_pt2e(prepared)
    info = {
        "tool": "torchao.pt2e", "quantizer": "XNNPACKQuantizer", "weights": "int8 per-channel symmetric",
        "activations": "int8 per-tensor", "keep_float": keep_float,
        "calibration": f"Percentile {ACTIVATION_PERCENTILE}" if keep_float == "auto" else "HistogramObserver",
        "float_op_types": ["add"] if keep_float == "auto" else [], "float_convolutions": float_convs,
        "int8_adds": int8_adds,
        "calibration_batches": len(calibration), "calibration_shape": [batch, 3, ch, cw],
        "calibration_source": str(calibration_dir) if calibration_dir else "camera-shake views of bundled photos",
    }
    return converted, info


def _with_percentile_ranges(config):
    """``config`` with activation ranges from :data:`ACTIVATION_PERCENTILE` (the quantizer's default
    HistogramObserver fits the ranges to the calibration images and clips on brighter or sharper ones)."""
    import dataclasses

    from torchao.quantization.pt2e import MinMaxObserver

    class PercentileObserver(MinMaxObserver):
        """min/max = the (100 - p)th and p-th percentile of each calibration batch, the extremes over batches."""

        def forward(self, x_orig: torch.Tensor) -> torch.Tensor:
            if x_orig.numel() == 0:
                return x_orig
            values = x_orig.detach().to(self.min_val.dtype).flatten()
            high = min(values.numel(), max(1, round(values.numel() * ACTIVATION_PERCENTILE / 100.0)))
            low = values.numel() - high + 1
            self.min_val.copy_(torch.minimum(self.min_val, torch.kthvalue(values, low).values))
            self.max_val.copy_(torch.maximum(self.max_val, torch.kthvalue(values, high).values))
            return x_orig

    activation = dataclasses.replace(config.input_activation,
                                     observer_or_fake_quant_ctr=PercentileObserver.with_args(eps=2**-12))
    return dataclasses.replace(config, input_activation=activation, output_activation=activation)


def _dynamic_hw(bh: int, bw: int, height: int, width: int) -> tuple[dict[int, Any]]:
    """H and W as multiples of the size block (the sizes the checkpoint's layout accepts), up to the export shape."""
    Dim = torch.export.Dim
    h_blocks = Dim("h_blocks", min=1, max=max(2, height // bh))
    w_blocks = Dim("w_blocks", min=1, max=max(2, width // bw))
    return ({2: bh * h_blocks, 3: bw * w_blocks},)


def _weight_shape(graph: torch.fx.GraphModule, node: torch.fx.Node) -> tuple[int, ...]:
    weight = node.args[1]
    value = weight.meta.get("val") if isinstance(weight, torch.fx.Node) else None
    if value is None and isinstance(weight, torch.fx.Node) and weight.op == "get_attr":
        value = _attr(graph, weight.target)
    return tuple(value.shape) if value is not None else ()


def _attr(graph: torch.fx.GraphModule, target: str):
    value: Any = graph
    for part in target.split("."):
        value = getattr(value, part)
    return value


def output_block_convolutions(graph: torch.fx.GraphModule, model: DMPHN) -> list[str]:
    """Names of the convolution nodes of the level-1 decoder's last residual block.

    That block writes the features the output convolution turns into the final residual, at full
    resolution, so its quantization error reaches the output unattenuated: on the authors' weights
    (352x640, frame 000019, reference q/dq) leaving it float takes the int8 program from 38.4 to
    41.5 dB, while leaving any whole other encoder or decoder float gains at most 1.1 dB. It is 2 of
    the ~112 quantized convolutions.
    """
    layers = model.decoders[0].layers
    last_block = max(index for index, layer in enumerate(layers) if isinstance(layer, ResBlock))
    return _nodes_in_modules(graph, _CONV_TARGETS, {f"decoders.0.layers.{last_block}"})


def int8_residual_adds(graph: torch.fx.GraphModule, model: DMPHN) -> list[str]:
    """Names of the residual-block adds that run in int8: those of the level-1 encoder and of the
    decoders of levels 2 and up (every other add, and those between levels, stays float).

    XNNPACK runs a float add between int8 convolutions as dequantize, add, quantize; an int8 add
    is one operator (at 352x640, 62 instead of 110 conversions, 4-7 % of the call, per-round
    ratio medians of 20 and 30 alternating calls). Where an int8 add costs, measured group by group on the
    authors' weights (352x640, their four frames, everything else this recipe, PSNR vs fp32 of
    the worst frame, 000019; all float 41.87 dB): the level-2..4 decoders' adds alone 41.65, the
    level-1 encoder's and those together 41.58; the level-2..4 encoders' alone 40.42, and adding
    the level-1 decoder's (but its float last block) to this recipe 40.19, so those stay float.
    """
    scopes = ("encoders.0.",) + tuple(f"decoders.{level}." for level in range(1, len(model.decoders)))
    blocks = {name for name, module in model.named_modules() if isinstance(module, ResBlock) and name.startswith(scopes)}
    return _nodes_in_modules(graph, _ADD_TARGETS, blocks)


def _nodes_in_modules(graph: torch.fx.GraphModule, targets: tuple[str, ...], modules: set[str]) -> list[str]:
    """Names of the ``targets`` nodes that run in one of ``modules`` (names in the model) or below it;
    the exported graph may name them with a wrapper's prefix ("model." under Float32IO)."""
    names = []
    for node in graph.graph.nodes:
        if node.op != "call_function" or str(node.target) not in targets:
            continue
        stack = list((node.meta.get("nn_module_stack") or {}).values())
        innermost = f".{stack[-1][0]}." if stack else ""
        if any(f".{module}." in innermost for module in modules):
            names.append(node.name)
    return names


def image_space_convolutions(graph: torch.fx.GraphModule) -> list[str]:
    """Names of the convolution nodes whose weights read or write 3 channels (image space)."""
    return [node.name for node in graph.graph.nodes
            if node.op == "call_function" and str(node.target) in _CONV_TARGETS
            and IMAGE_CHANNELS in _weight_shape(graph, node)[:2]]


def _keep_float_filter(float_convs: set[str], int8_adds: set[str]):
    """Quantizer filter: every node but the named convolutions and the adds not named in ``int8_adds``."""

    def quantize(node: torch.fx.Node) -> bool:
        if str(node.target) in _ADD_TARGETS:
            return node.name in int8_adds
        return node.name not in float_convs

    return quantize


def _build(model: DMPHN, path: Path, *, batch: int, height: int, width: int, device: str, precision: str,
           **options: Any) -> dict[str, Any]:
    return export_executorch(model, path, batch=batch, height=height, width=width, precision=precision, **options)


#: recipe 1: int8 residual adds in the level-1 encoder and the level-2+ decoders (was: every add float)
EXPORTER = Exporter(format="executorch", runtime="et", suffix=".pte", precisions=PRECISIONS, devices=("cpu",),
                    build=_build, recipe=1)
