"""One runner per runtime behind the interface in :mod:`runtimes.base`.

The registry maps the keys users type (``dmphn-bench --runtime KEY``) to runner classes,
imported only when asked for, so a missing optional runtime never breaks the others.
"""

from __future__ import annotations

import importlib

from .base import Runner

RUNTIMES: dict[str, str] = {
    "torch": "runtimes.torch_eager:TorchRunner",
    "torch-ref": "runtimes.torch_eager:TorchReferenceRunner",
    "torchscript": "runtimes.torchscript:TorchScriptRunner",
    "ort": "runtimes.onnxruntime:OnnxRuntimeRunner",
    "trt": "runtimes.tensorrt:TensorRTRunner",
    "aoti": "runtimes.aoti:AOTIRunner",
    "compile": "runtimes.torch_compile:TorchCompileRunner",
    "ov": "runtimes.openvino:OpenVINORunner",
}


def runner_class(runtime: str) -> type[Runner]:
    try:
        module_name, class_name = RUNTIMES[runtime].split(":")
    except KeyError:
        raise ValueError(f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)}") from None
    return getattr(importlib.import_module(module_name), class_name)


__all__ = ["RUNTIMES", "Runner", "runner_class"]
