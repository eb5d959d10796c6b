"""FP16 overflow guard: which ONNX nodes' activations leave the fp16 range, measured with ONNX Runtime on the CPU.

A TensorRT fp16 engine runs every layer in half precision unless told otherwise; an activation
beyond 65504 becomes inf and the image turns to NaN. :func:`find_fp16_overflow_nodes` runs the
float32 ONNX graph on calibration inputs, records ``max |x|`` of every node output inside the graph
(one inference of memory) and names the tensors that :mod:`export.to_tensorrt` pins to fp32.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import numpy as np
import onnx

from dmphn_core.artifact import INPUT_NAME

FP16_MAX = 65504.0
#: Pin a node to fp32 once |x| passes half the fp16 range: deployment inputs differ from
#: the calibration inputs, so a node that reaches 40000 here may overflow on a real photo.
FP16_SAFE_MAX = 2.0**15
_ABSMAX_PREFIX = "dmphn_absmax/"


def _with_absmax_outputs(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, str]]:
    """Copy of ``model`` with ``max |t|`` of every float node output added as a scalar output.

    Reducing inside the graph keeps memory at one inference: exposing the full
    intermediate tensors would hold every activation of the network at once.
    Returns the model and ``{scalar output name: tensor name}``.
    """
    inferred = onnx.shape_inference.infer_shapes(model)
    elem_types = {
        info.name: info.type.tensor_type.elem_type
        for info in [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]
    }
    probed = onnx.ModelProto()
    probed.CopyFrom(model)
    graph = probed.graph
    probes: dict[str, str] = {}
    for node in model.graph.node:
        for tensor in node.output:
            if not tensor or elem_types.get(tensor) != onnx.TensorProto.FLOAT:
                continue
            abs_name, max_name = f"{_ABSMAX_PREFIX}abs/{tensor}", f"{_ABSMAX_PREFIX}{tensor}"
            graph.node.append(onnx.helper.make_node("Abs", [tensor], [abs_name], name=abs_name))
            # no axes: reduce over every axis to one scalar
            graph.node.append(onnx.helper.make_node("ReduceMax", [abs_name], [max_name], name=max_name, keepdims=0))
            graph.output.append(onnx.helper.make_tensor_value_info(max_name, onnx.TensorProto.FLOAT, []))
            probes[max_name] = tensor
    return probed, probes


def activation_ranges(onnx_path: str | os.PathLike, inputs: Iterable[np.ndarray]) -> dict[str, float]:
    """``{tensor name: max |value|}`` over ``inputs`` for every float tensor a node produces."""
    import onnxruntime as ort

    model = onnx.load(str(onnx_path))
    probed, probes = _with_absmax_outputs(model)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(probed.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = list(probes)
    ranges = dict.fromkeys(probes.values(), 0.0)
    for x in inputs:
        for name, value in zip(names, session.run(names, {INPUT_NAME: np.ascontiguousarray(x, dtype=np.float32)})):
            value = float(value)
            tensor = probes[name]
            ranges[tensor] = value if np.isnan(value) else max(ranges[tensor], value)
    return ranges


def fp16_overflow_report(
    onnx_path: str | os.PathLike, inputs: Iterable[np.ndarray], threshold: float = FP16_SAFE_MAX
) -> dict[str, Any]:
    """Which nodes must stay fp32: those whose output passes ``threshold`` and those reading it.

    A consumer of an out-of-range tensor counts too: in fp16 its *input* would already be inf.
    Returns ``{"nodes": [...], "tensors": [...], "max_abs": {tensor: value}}``.
    """
    ranges = activation_ranges(onnx_path, inputs)
    hot = {tensor for tensor, value in ranges.items() if not value <= threshold}  # NaN counts as hot
    model = onnx.load(str(onnx_path), load_external_data=False)
    nodes = [
        _node_name(index, node)
        for index, node in enumerate(model.graph.node)
        if hot.intersection(node.output) or hot.intersection(node.input)
    ]
    return {
        "threshold": threshold,
        "nodes": nodes,
        "tensors": sorted(hot),
        "max_abs": {tensor: ranges[tensor] for tensor in sorted(hot)},
        "largest_abs": max(ranges.values(), default=0.0),
    }


def find_fp16_overflow_nodes(
    onnx_path: str | os.PathLike, inputs: Iterable[np.ndarray], threshold: float = FP16_SAFE_MAX
) -> list[str]:
    """Names of the ONNX nodes that must run in fp32 (see :func:`fp16_overflow_report`)."""
    return fp16_overflow_report(onnx_path, inputs, threshold)["nodes"]


def _node_name(index: int, node: onnx.NodeProto) -> str:
    return node.name or f"{node.op_type}_{index}"
