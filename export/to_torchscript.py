"""DMPHN -> TorchScript by tracing, with the artifact metadata stored as an extra file.

Tracing records the static-shape model exactly: its forward has no data-dependent control
flow, only the patch fold/unfold reshapes. ``torch.jit.script`` is not used: the forward
reads the patch geometry from a Python dataclass (plus module constants and PEP 604
annotations), which TorchScript's compiler rejects (first error: the global
``IMAGE_CHANNELS`` in ``_check_input``). Making it scriptable would fork the geometry into
TorchScript-only code, against the rule that the geometry has one home.
"""

from __future__ import annotations

import copy
import os
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from dmphn_core.artifact import METADATA_KEY, artifact_metadata, metadata_json
from dmphn_core.errors import DMPHNError
from dmphn_core.fileio import atomic_path
from dmphn_core.model import DMPHN
from runtimes.torch_utils import tf32_mode, torchscript_on_purpose

from .exporter import Exporter


def export_torchscript(
    model: DMPHN, path: str | os.PathLike, *, batch: int, height: int, width: int, device: str = "cpu"
) -> dict[str, Any]:
    """Trace ``model`` at (batch, 3, height, width) on ``device`` and save it to ``path``.

    The module is traced in float32 on a copy (the caller's model is not moved). The
    extra file ``dmphn.json`` holds :func:`dmphn_core.artifact.artifact_metadata`; C++ reads it
    with ``torch::jit::load(path, device, extra_files)``.
    """
    model.geometry.check_size(height, width)
    if batch < 1:
        raise DMPHNError(f"batch must be at least 1, got {batch}")
    if device == "cuda" and not torch.cuda.is_available():
        raise DMPHNError("cannot trace on cuda: no CUDA device here")
    source = copy.deepcopy(model).to(device, torch.float32).eval()
    example = torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(0)).to(device)
    begin = time.perf_counter()
    # TF32 off while tracing: the trace stores cuDNN's allow_tf32 switch as a constant in every
    # convolution (PyTorch's default is on), so a module traced with it on runs TF32 on CUDA
    # whatever the caller sets later (seen on an H200: 720p fp32 verification failed, 2026-11-26).
    with torch.no_grad(), torchscript_on_purpose(), tf32_mode(False), warnings.catch_warnings():
        # the tracer warns that shape-derived ints become constants: intended for static shapes
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(source, example, check_trace=True)
    metadata = artifact_metadata(model.config, batch=batch, height=height, width=width, torchscript={"method": "trace", "device": device})
    with atomic_path(path) as tmp, torchscript_on_purpose():
        torch.jit.save(traced, str(tmp), _extra_files={METADATA_KEY: metadata_json(metadata)})
        size = Path(tmp).stat().st_size
    seconds = time.perf_counter() - begin
    return {
        "method": "torch.jit.trace",
        "device": device,
        "export_shape": [batch, 3, height, width],
        "seconds": round(seconds, 2),
        "file_bytes": size,
        "log_lines": [
            f"torchscript: traced {model.config.name} at {batch}x3x{height}x{width} on {device} in {seconds:.1f}s, "
            f"{size / 2**20:.1f} MiB; metadata in extra file {METADATA_KEY}"
        ],
    }


def _build(model: DMPHN, path: Path, *, batch: int, height: int, width: int, device: str, precision: str,
           **options: Any) -> dict[str, Any]:
    return export_torchscript(model, path, batch=batch, height=height, width=width, device=device, **options)


EXPORTER = Exporter(format="torchscript", runtime="torchscript", suffix=".ts", precisions=("fp32",), build=_build)
