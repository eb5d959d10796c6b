"""DMPHN -> AOTInductor package (.pt2): torch.export, then compiled ahead of time by Inductor.

The package holds a shared library for one device (cpu or cuda) and its weights, loadable
from Python (``torch._inductor.aoti_load_package``) and from C++
(``torch::inductor::AOTIModelPackageLoader``), with no Python needed at run time.

I/O is float32 whatever the compute precision (fp16/bf16 go through
:class:`runtimes.torch_utils.Float32IO`). The artifact metadata is stored as package
metadata under ``dmphn.json`` (Inductor's ``aot_inductor.metadata``); both loaders
return it from ``get_metadata()``.

A CPU package is compiled for this machine's instruction set (recorded by Inductor as
``AOTI_CPU_ISA``, e.g. AVX512): build it on, or for, the CPU that will run it.
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
from dmphn_core.errors import DMPHNError, exception_line
from dmphn_core.fileio import atomic_path
from dmphn_core.model import DMPHN
from dmphn_core.precision import check_precision, torch_dtype
from runtimes.aoti import AOTIRunner
from runtimes.torch_utils import Float32IO

from .exporter import Exporter

MAX_DYNAMIC_BATCH = 64


def export_aoti(
    model: DMPHN,
    path: str | os.PathLike,
    *,
    batch: int,
    height: int,
    width: int,
    device: str = "cpu",
    precision: str = "fp32",
    dynamic_batch: bool = False,
) -> dict[str, Any]:
    """Export and compile ``model`` for (batch, 3, height, width) on ``device`` into ``path``."""
    model.geometry.check_size(height, width)
    check_precision(precision, AOTIRunner.precisions, "AOTInductor precision")
    if device not in ("cpu", "cuda"):
        raise DMPHNError(f"unknown device {device!r}; use cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise DMPHNError("cannot compile an AOTInductor package for cuda: no CUDA device here")
    if batch < 1:
        raise DMPHNError(f"batch must be at least 1, got {batch}")
    module = Float32IO(copy.deepcopy(model).to(device).eval(), torch_dtype(precision)).eval()
    # a dynamic axis traced at size 1 would be specialised away by torch.export
    trace_batch = max(batch, 2) if dynamic_batch else batch
    example = torch.rand(trace_batch, 3, height, width, generator=torch.Generator().manual_seed(0)).to(device)
    dynamic_shapes = ({0: torch.export.Dim("batch", min=1, max=MAX_DYNAMIC_BATCH)},) if dynamic_batch else None
    metadata = artifact_metadata(
        model.config, batch=batch, height=height, width=width, precision=precision, dynamic_batch=dynamic_batch,
        aoti={"device": device, "torch": torch.__version__, "max_batch": MAX_DYNAMIC_BATCH if dynamic_batch else batch},
    )
    begin = time.perf_counter()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # export's deprecation notices; failures still raise
        try:
            program = torch.export.export(module, (example,), dynamic_shapes=dynamic_shapes)
        except Exception as exc:  # noqa: BLE001 - export raises many kinds; the user gets one line
            first = exception_line(exc)
            raise DMPHNError(f"torch.export failed for {model.config.name}: {first}") from exc
        export_seconds = time.perf_counter() - begin
        with atomic_path(path) as tmp:
            torch._inductor.aoti_compile_and_package(
                program,
                package_path=str(tmp),
                inductor_configs={"aot_inductor.metadata": {METADATA_KEY: metadata_json(metadata)}},
            )
            size = Path(tmp).stat().st_size
    compile_seconds = time.perf_counter() - begin - export_seconds
    shape = f"{'1..' + str(MAX_DYNAMIC_BATCH) if dynamic_batch else batch}x3x{height}x{width}"
    return {
        "device": device,
        "precision": precision,
        "export_shape": [batch, 3, height, width],
        "dynamic_batch": dynamic_batch,
        "export_seconds": round(export_seconds, 2),
        "compile_seconds": round(compile_seconds, 2),
        "file_bytes": size,
        "torch": torch.__version__,
        "log_lines": [
            f"aoti: {model.config.name} {shape} on {device} in {precision}: torch.export {export_seconds:.1f}s, "
            f"Inductor compile {compile_seconds:.1f}s, {size / 2**20:.1f} MiB; metadata key {METADATA_KEY}"
        ],
    }


def _build(model: DMPHN, path: Path, **options: Any) -> dict[str, Any]:
    return export_aoti(model, path, **options)  # looked up at call time, so tests can stand in for it


EXPORTER = Exporter(format="aoti", runtime="aoti", suffix=".pt2", precisions=AOTIRunner.precisions, build=_build)
