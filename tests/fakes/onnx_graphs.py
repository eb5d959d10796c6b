"""Tiny hand-made ONNX graphs with DMPHN's I/O names, for tests that drive the TensorRT code
through the fake module (no export, so they cost milliseconds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from dmphn_core.artifact import INPUT_NAME, OUTPUT_NAME


def overflow_chain(path: Path, height: int, width: int, *, dynamic_batch: bool = False) -> Path:
    """blurred -> Mul x1e5 (named "scale_up") -> Relu (unnamed) -> Mul x1e-5 (unnamed) -> Add blurred.

    ``t_big`` and ``t_relu`` pass the fp16 range (hot); ``t_small`` and the output do not.
    The unnamed consumer reads a hot tensor but writes a small one: name-based pinning misses it.
    """
    batch = "batch" if dynamic_batch else 1
    nodes = [
        helper.make_node("Mul", [INPUT_NAME, "k_big"], ["t_big"], name="scale_up"),
        helper.make_node("Relu", ["t_big"], ["t_relu"]),
        helper.make_node("Mul", ["t_relu", "k_small"], ["t_small"]),
        helper.make_node("Add", ["t_small", INPUT_NAME], [OUTPUT_NAME], name="residual"),
    ]
    graph = helper.make_graph(
        nodes, "overflow_chain",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [batch, 3, height, width])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [batch, 3, height, width])],
        initializer=[numpy_helper.from_array(np.array(1e5, np.float32), "k_big"),
                     numpy_helper.from_array(np.array(1e-5, np.float32), "k_small")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path
