"""ExecuTorch runner: PyTorch's edge runtime, running an XNNPACK-lowered ``.pte`` on the CPU.

Runs a program written by :func:`export.to_executorch.export_executorch` through ExecuTorch's
Python bindings (``portable_lib``), the same C++ runtime and XNNPACK delegate an app links
(``cpp/``'s ``--backend executorch`` among them). Programs are static-shape: one per input size.

Threads: XNNPACK runs on ExecuTorch's one process-wide thread pool (default: one thread per
core). ``threads`` resizes that pool when the runner activates (``_unsafe_reset_threadpool``,
the bindings' only handle on it), so it applies to every ExecuTorch program in the process.

Metadata (model config, export shape, precision) comes from the program's constant method
:data:`dmphn_core.artifact.EXECUTORCH_METADATA_METHOD`. Input and output are float32 (B, 3, H, W).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import torch

from dmphn_core.artifact import EXECUTORCH_METADATA_METHOD, config_of, read_metadata
from dmphn_core.errors import DMPHNError, exception_line

from .base import Runner

INSTALL_HINT = "pip install 'dmphn-deploy[edge]' (executorch)"


def executorch_version() -> str | None:
    try:
        from executorch.version import __version__
    except ImportError:
        return None
    return __version__


def check_executorch_available() -> None:
    if executorch_version() is None:
        raise DMPHNError(f"executorch is not installed ({INSTALL_HINT})")


def _portable_lib():
    from executorch.extension.pybindings import portable_lib

    return portable_lib


def thread_count() -> int:
    """Threads of ExecuTorch's process-wide pool."""
    return int(_portable_lib()._threadpool_get_thread_count())


class ExecuTorchRunner(Runner):
    """Runs a ``.pte`` on the CPU through ExecuTorch's pybindings. ``threads``: resize ExecuTorch's thread pool."""

    runtime = "et"
    artifact_format = "executorch"
    devices: ClassVar[tuple[str, ...]] = ("cpu",)
    precisions: ClassVar[tuple[str, ...]] = ("fp32", "fp16", "int8")
    precision_note = "each precision is its own .pte (dmphn-export executorch --precision)"
    rank = 8
    # 352x640, 2-core Xeon with AVX-512 VNNI and AMX, one round-robin run (2026-12-06): fp32 1.22x the
    # per-patch eager (ort 1.26x, ov 1.39x); int8 2.94x (ov int8 4.23x): after ov and ort, at both
    auto_rank: ClassVar[dict[str, int]] = {"cpu": 3}

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        device: str = "cpu",
        precision: str = "fp32",
        threads: int | None = None,
        name: str | None = None,
    ) -> None:
        if threads is not None and threads < 1:
            raise DMPHNError(f"threads must be at least 1, got {threads}")
        super().__init__(device=device, precision=precision, name=name, threads=threads)
        self.path = Path(path)
        self.metadata: dict[str, Any] | None = None
        self.module = None

    @classmethod
    def unavailable_reason(cls, device: str, precision: str) -> str | None:
        reason = super().unavailable_reason(device, precision)
        if reason:
            return reason
        if executorch_version() is None:
            return f"executorch is not installed ({INSTALL_HINT})"
        return None

    # -- lifecycle -------------------------------------------------------------------
    def _activate(self) -> None:
        self._require_available()
        if self.path.suffix.lower() != ".pte":
            raise DMPHNError(f"an ExecuTorch program is a .pte file, got {self.path}")
        if not self.path.is_file():
            raise DMPHNError(f"ExecuTorch program not found: {self.path}")
        self.metadata = read_metadata(self.path, "executorch")
        if not self.metadata:
            raise DMPHNError(f"{self.path} is not a DMPHN export: it has no {EXECUTORCH_METADATA_METHOD!r} "
                             f"metadata method")
        built = self.metadata.get("precision")
        if built != self.precision:
            raise DMPHNError(f"{self.path} is a {built} program; run it at precision {built}, not {self.precision}")
        lib = _portable_lib()
        if self.threads and thread_count() != self.threads:
            lib._unsafe_reset_threadpool(self.threads)
        try:
            self.module = lib._load_for_executorch(str(self.path))
        except Exception as exc:  # noqa: BLE001 - the bindings raise RuntimeError with the runtime's status
            first = exception_line(exc)
            raise DMPHNError(f"cannot load ExecuTorch program {self.path}: {first}") from None
        self.input_shape = tuple(self.metadata["export_shape"])
        self.model_config = config_of(self.metadata)

    def _deactivate(self) -> None:
        self.module = None

    # -- inference -------------------------------------------------------------------
    def _infer(self, x: torch.Tensor) -> torch.Tensor:
        assert self.module is not None
        # the program reads its input in place; it never writes to it
        return self.module.forward([x.contiguous()])[0]

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "executorch": executorch_version(), "delegate": "XNNPACK",
                "threads": self.threads or (thread_count() if executorch_version() else None)}
