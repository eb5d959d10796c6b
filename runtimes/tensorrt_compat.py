"""Which TensorRT this project supports, and whether an engine fits the running library and GPU.

Shared by the engine builder (:mod:`export.to_tensorrt`) and the runner
(:mod:`runtimes.tensorrt`); it imports nothing from TensorRT itself.

TensorRT 10.x only: fp16 builds use weakly typed networks (``BuilderFlag.FP16``) and pin
the overflowing layers with per-layer precision plus ``OBEY_PRECISION_CONSTRAINTS``; all
three are deprecated since 10.12 and gone in TensorRT 11, where fp16 would need a
strongly typed network (casts in the ONNX graph). pyproject.toml pins the same range.
"""

from __future__ import annotations

from typing import Any

#: The range pyproject.toml's ``gpu`` extra pins; the one TensorRT major version supported.
SUPPORTED_MAJOR = 10
SUPPORTED_RANGE = ">=10.0,<11"
INSTALL_HINT = f'pip install "tensorrt{SUPPORTED_RANGE}" on a CUDA host'
#: ``IExecutionContext.set_tensor_address`` wants device buffers aligned to 256 bytes.
TENSOR_ALIGNMENT = 256


def release(version: str) -> tuple[int, ...]:
    """``"10.3.0.26"`` -> ``(10, 3, 0)``: the part both Python (``trt.__version__``) and C++
    (``getInferLibVersion()``) can see; the build number is left out."""
    parts = []
    for piece in str(version).split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit()) if piece else ""
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def unsupported_version_reason(version: str) -> str | None:
    """Why TensorRT ``version`` cannot build engines here; None for a 10.x release."""
    found = release(version)
    if found and found[0] == SUPPORTED_MAJOR:
        return None
    return (
        f"TensorRT {version} is installed, but this project supports TensorRT {SUPPORTED_RANGE} only "
        f"(TensorRT 11 dropped the weakly typed fp16 builds it uses); {INSTALL_HINT}"
    )


def engine_mismatch(
    metadata: dict[str, Any] | None, trt_version: str, compute_capability: str, device_name: str | None = None
) -> str | None:
    """Why an engine with sidecar ``metadata`` cannot load here, checked before deserialising.

    TensorRT engines are specific to the TensorRT release and to the GPU model they were built
    on (without hardware compatibility, which these builds do not ask for): an engine built on
    an H100 is not one for an H200, though both are compute capability 9.0. TensorRT's own
    message for a mismatch is a vague deserialisation failure, or none. None when everything
    matches or the sidecar does not say.
    """
    metadata = metadata or {}
    built_with = (metadata.get("tensorrt") or {}).get("version")
    if built_with and release(built_with) != release(trt_version):
        return f"it was built with TensorRT {built_with}, but this is TensorRT {trt_version}"
    gpu = metadata.get("gpu") or {}
    built_for = gpu.get("compute_capability")
    if built_for and str(built_for) != compute_capability:
        return (
            f"it was built for compute capability {built_for} ({gpu.get('name', 'unknown GPU')}), "
            f"but this GPU has compute capability {compute_capability}"
        )
    built_on = gpu.get("name")
    if built_on and device_name and built_on != device_name:
        return (f"it was built on a {built_on}, but this GPU is a {device_name} (TensorRT engines are specific "
                f"to the GPU model they were built on)")
    return None
