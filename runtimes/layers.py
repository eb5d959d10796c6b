"""Intermediate outputs: every convolution's output, in execution order, from each kind of runtime.

What Polygraphy's ``--onnx-outputs mark all`` and ONNX Runtime's ``qdq_loss_debug`` do for one
graph, done for the three runtimes whose graphs can be opened: the torch eager model (forward
hooks), an ONNX graph (its convolution outputs become graph outputs) and an OpenVINO model
(``Model.add_outputs``). DMPHN's convolutions form one chain (every convolution depends on the
one before it, across levels), so the k-th convolution of one runtime is the k-th of another:
that is how points are matched, and a different count is an error, not a guess.

``inputs_of``: indices of convolutions whose (float) *input* is also wanted; for a quantized
graph that is the float tensor before its quantize/dequantize (or FakeQuantize) pair, i.e. what
the float model would feed it. Marking outputs can stop a runtime from fusing across them
(a marked Conv is not fused with the ReLU after it): the marked run is for explaining, never timing.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

#: ONNX / OpenVINO op types counted as "a convolution" (torch: nn.Conv2d, nn.ConvTranspose2d)
ONNX_CONVOLUTIONS = ("Conv", "ConvTranspose")
OV_CONVOLUTIONS = ("Convolution", "ConvolutionBackpropData", "GroupConvolution")
#: ops between a float tensor and a quantized convolution's input, walked back over
ONNX_QUANTIZE = ("QuantizeLinear", "DequantizeLinear")
OV_QUANTIZE = ("FakeQuantize", "Convert")


@dataclass
class MarkedOutputs:
    """One inference with its intermediate points: float32 arrays in execution order."""

    conv_outputs: list[np.ndarray]
    conv_inputs: dict[int, np.ndarray] = field(default_factory=dict)
    #: names of the convolutions in the runtime's own vocabulary (module path, node name)
    conv_names: list[str] = field(default_factory=list)
    #: the conv outputs exclude the bias (OpenVINO's Convolution op; torch and ONNX include it)
    without_bias: bool = False


def mark_torch(model: nn.Module, call, inputs_of: Collection[int] = ()) -> MarkedOutputs:
    """Run ``call()`` (which runs ``model``) with a forward hook on every conv module."""
    names = {module: name for name, module in model.named_modules()}
    marked = MarkedOutputs([])

    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        index = len(marked.conv_outputs)
        if index in inputs_of:
            marked.conv_inputs[index] = args[0].detach().float().cpu().numpy()
        marked.conv_outputs.append(output.detach().float().cpu().numpy())
        marked.conv_names.append(names[module])

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    try:
        call()
    finally:
        for handle in handles:
            handle.remove()
    return marked


def mark_onnx(model_proto, inputs_of: Collection[int] = ()) -> tuple[bytes, list[str], dict[int, str], list[str]]:
    """Add every Conv/ConvTranspose output (and the float inputs of ``inputs_of``) as graph outputs.

    Returns ``(model bytes, output names per conv, input name per index, conv node names)``.
    """
    import onnx

    graph = model_proto.graph
    producer = {output: node for node in graph.node for output in node.output}
    convs = [node for node in graph.node if node.op_type in ONNX_CONVOLUTIONS]
    outputs = [node.output[0] for node in convs]
    inputs = {}
    for index in inputs_of:
        tensor = convs[index].input[0]
        while tensor in producer and producer[tensor].op_type in ONNX_QUANTIZE:
            tensor = producer[tensor].input[0]
        inputs[index] = tensor
    existing = {output.name for output in graph.output}
    for name in dict.fromkeys([*outputs, *inputs.values()]):
        if name not in existing:
            graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    return model_proto.SerializeToString(), outputs, inputs, [node.name or node.output[0] for node in convs]


def mark_openvino(model, inputs_of: Collection[int] = ()) -> tuple[list[int], dict[int, int], list[str]]:
    """Add every convolution's output and the float inputs of ``inputs_of`` to ``model`` (an
    ``ov.Model``, changed in place: pass a clone).

    OpenVINO's Convolution has no bias (the bias is a separate Add that constant folding may merge
    with the next constant add), so these outputs are *without* bias. Returns ``(model output
    index per conv, model output index per input index, conv names)``.
    """
    convs = [op for op in model.get_ordered_ops() if op.get_type_name() in OV_CONVOLUTIONS]
    outputs = [op.output(0) for op in convs]
    inputs = {}
    for index in inputs_of:
        port = convs[index].input(0).get_source_output()
        while port.get_node().get_type_name() in OV_QUANTIZE:
            port = port.get_node().input(0).get_source_output()
        inputs[index] = port
    model.add_outputs([*outputs, *inputs.values()])
    # a port that already was an output is not added twice: find each by its tensor name
    position = {name: index for index, port in enumerate(model.outputs) for name in port.get_names()}
    return ([position[port.get_any_name()] for port in outputs],
            {index: position[port.get_any_name()] for index, port in inputs.items()},
            [op.get_friendly_name() for op in convs])
