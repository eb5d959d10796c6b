"""A model argument (a file path) -> a ready-to-activate runner.

The artifact format comes from :func:`dmphn_core.artifact.detect_format` (suffix, and a ``.pt``
that is really a TorchScript archive runs as TorchScript); the runtime is the one registered
for that format unless ``runtime`` names another. A TensorRT engine runs in the precision its
sidecar records.
"""

from __future__ import annotations

import os
from pathlib import Path

from dmphn_core.artifact import detect_format, read_metadata
from dmphn_core.checkpoint import DEMO_CHECKPOINT, load_checkpoint
from dmphn_core.errors import DMPHNError, RuntimeUnavailable

from .base import Runner
from .registry import runner_class, runtime_for_format


def runtime_for_path(path: str | os.PathLike) -> str:
    """The runtime key a model file runs with when none is named."""
    return runtime_for_format(detect_format(path))


def _artifact_precision(path: Path, fmt: str) -> str:
    """The precision an artifact was built in, as its metadata records it (fp32 when it does not say;
    an engine without its sidecar: fp16, the default build). An int8 IR or QDQ ONNX runs at int8
    only, an engine or a .pt2 at the precision it was built in."""
    try:
        metadata = read_metadata(path, fmt)
    except DMPHNError:
        metadata = None  # the runner reports an unreadable file when it loads it
    default = "fp16" if fmt == "tensorrt" else "fp32"
    return (metadata or {}).get("precision", default)


def resolve_runner(
    model: str | os.PathLike | None = None,
    runtime: str | None = None,
    device: str | None = None,
    precision: str | None = None,
    *,
    threads: int | None = None,
) -> Runner:
    """A ready-to-activate runner for a model file (None: the shipped demo checkpoint).

    ``runtime`` overrides the guess from the file; ``device`` None/"auto" picks CUDA when there
    is one and the runtime can use it; ``precision`` None means fp32 for a checkpoint, and for an
    artifact the precision its metadata records (an engine, a .pt2, an int8 IR or QDQ ONNX).
    """
    if model is None:
        if not DEMO_CHECKPOINT.is_file():
            raise DMPHNError(
                f"no model given and the demo checkpoint is missing ({DEMO_CHECKPOINT}); pass --model with a "
                f"checkpoint (.pt) from dmphn-train or an exported artifact (.ts, .onnx, .pt2, .engine)"
            )
        path = DEMO_CHECKPOINT
    else:
        path = Path(model)
    if not path.exists():
        raise DMPHNError(f"model not found: {path}")
    if path.is_dir():
        raise DMPHNError(f"model path is a folder, not a file: {path}")
    cls = runner_class(runtime) if runtime is not None else None
    fmt = detect_format(path)
    cls = cls or runner_class(runtime_for_format(fmt))
    if cls.needs_service:
        raise DMPHNError(f"runtime {cls.runtime} runs no model file: it is a client of {cls.needs_service}")
    if fmt != cls.artifact_format:
        raise DMPHNError(
            f"runtime {cls.runtime} runs {cls.artifact_format} files, but {path} is a {fmt} file; "
            + (f"export it first (dmphn-export {cls.artifact_format} {path})" if fmt == "checkpoint"
               else "leave out --runtime to run it with its own runtime")
        )
    precision = precision or ("fp32" if fmt == "checkpoint" else _artifact_precision(path, fmt))
    wanted = device
    device = cls.resolve_device(device)
    if wanted in (None, "auto") and device == "cuda" and cls.default_device == "auto" and cls.unavailable_reason(device, precision):
        device = "cpu"  # e.g. a CPU-only onnxruntime on a GPU host: "auto" means "what works"
    reason = cls.unavailable_reason(device, precision)
    if reason:
        raise RuntimeUnavailable(f"runtime {cls.runtime} cannot run on {device}/{precision}: {reason}")
    source = load_checkpoint(path).build_model if fmt == "checkpoint" else path  # a bad checkpoint fails here, before any image is read
    return cls(source, device=device, precision=precision, threads=threads)


__all__ = ["resolve_runner", "runtime_for_path"]
