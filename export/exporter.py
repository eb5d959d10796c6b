"""Exporters and the one export-then-verify recipe every caller uses.

Each ``export/to_*.py`` module declares an :class:`Exporter` named ``EXPORTER``: the artifact
format it writes, the runtime that runs (and so verifies) it, the precisions it builds, the
files that travel with the artifact, and a ``build`` function with one signature. They are
found by importing this package's ``to_*`` modules, so a new format is one new file.

:func:`export_verified` builds into a temporary file beside the destination, runs it through
its runtime against PyTorch fp32 (:func:`export.verify.verify_runner`) and renames it into
place only when it passes; a failed export leaves nothing behind. ``dmphn-export``, the Triton
repository writer, the demo and the benchmark's artifact cache all go through it.
"""

from __future__ import annotations

import functools
import importlib
import os
import pkgutil
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dmphn_core.artifact import companion_paths
from dmphn_core.errors import DMPHNError
from dmphn_core.fileio import atomic_path, strict_json, write_text_atomic
from dmphn_core.model import DMPHN
from dmphn_core.precision import check_precision, tolerance_for
from runtimes import runner_class

from .verify import VerificationReport, verify_runner


class ExportFailed(DMPHNError):
    pass


def _no_cache_options(folder: Path) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Exporter:
    """How one artifact format is written: ``build(model, path, *, batch, height, width, device, precision, **options)``.

    ``build`` returns the export info (JSON-able; ``log_lines`` is printed). ``companions(path)``
    lists the files written beside ``path`` that belong to it (a sidecar, weights), which are
    renamed together with it; by default the artifact contract's list
    (:func:`dmphn_core.artifact.companion_paths`), the one place that knows them.
    """

    format: str
    runtime: str
    suffix: str
    precisions: tuple[str, ...]
    build: Callable[..., dict[str, Any]]
    devices: tuple[str, ...] = ("cpu", "cuda")
    companions: Callable[[Path], list[Path]] | None = None
    #: a format this one is built from; ``build`` then accepts ``source=PATH`` of such a file
    source_format: str | None = None
    #: build options an artifact cache passes for artifacts it keeps in a folder (a TensorRT timing cache there)
    cache_options: Callable[[Path], dict[str, Any]] = field(default=_no_cache_options)
    #: the recipe's revision: raised when the same model and settings would now give a different
    #: artifact (a quantization recipe changed), so that cached artifacts and measured speeds of the
    #: old recipe are rebuilt and measured again rather than trusted; 0 until it first changes
    recipe: int = 0

    def __post_init__(self) -> None:
        if self.companions is None:
            object.__setattr__(self, "companions", functools.partial(companion_paths, fmt=self.format))


def recipe_revisions() -> str:
    """The exporters' raised recipe revisions as one string for cache keys (``"executorch1"``; ``""`` if none)."""
    return ",".join(f"{fmt}{exporter.recipe}" for fmt, exporter in sorted(exporters().items()) if exporter.recipe)


@functools.cache
def exporters() -> dict[str, Exporter]:
    """``{format: Exporter}`` of every ``export/to_*.py`` module that declares one."""
    package = importlib.import_module(__package__)
    found: dict[str, Exporter] = {}
    for module_info in pkgutil.iter_modules(package.__path__):
        if module_info.name.startswith("to_"):
            exporter = getattr(importlib.import_module(f"{__package__}.{module_info.name}"), "EXPORTER", None)
            if isinstance(exporter, Exporter):
                found[exporter.format] = exporter
    return found


def exporter_for(fmt: str) -> Exporter:
    try:
        return exporters()[fmt]
    except KeyError:
        raise DMPHNError(f"no exporter for {fmt!r}; use one of {', '.join(exporters())}") from None


def export_verified(
    fmt: str,
    model: DMPHN,
    output: str | os.PathLike,
    *,
    batch: int,
    height: int,
    width: int,
    device: str = "cpu",
    precision: str = "fp32",
    verify_shapes: list[tuple[int, int, int]] | None = None,
    max_abs: float | None = None,
    min_psnr: float | None = None,
    report: str | os.PathLike | None = None,
    runner_options: dict[str, Any] | None = None,
    log: Callable[[str], None] | None = print,
    prebuilt: str | os.PathLike | None = None,
    **options: Any,
) -> tuple[dict[str, Any], VerificationReport]:
    """Export ``model`` as ``fmt`` to ``output``, verified; raise :class:`ExportFailed` (nothing written) if it fails.

    ``verify_shapes``: ``(batch, height, width)`` to verify at (default: the export shape);
    ``options`` go to the exporter's ``build``; ``runner_options`` to the verifying runner.
    ``prebuilt``: an artifact of ``fmt`` built elsewhere (another process or machine): copied
    instead of exported, then verified and written the same way.
    """
    exporter = exporter_for(fmt)
    check_precision(precision, exporter.precisions, f"{fmt} precision")
    if device not in exporter.devices:
        raise DMPHNError(f"{fmt} exports run on {' or '.join(exporter.devices)}, not {device!r}")
    if batch < 1:
        raise DMPHNError(f"--batch must be at least 1, got {batch}")
    model.geometry.check_size(height, width)
    output = Path(output)
    tolerance = tolerance_for(precision, max_abs=max_abs, min_psnr_db=min_psnr)
    shapes = verify_shapes or [(batch, height, width)]
    emit = log or (lambda line: None)
    with atomic_path(output) as tmp:
        staged = exporter.companions(tmp)
        try:
            if prebuilt is None:
                info = exporter.build(model, tmp, batch=batch, height=height, width=width, device=device,
                                      precision=precision, **options)
            else:
                info = _stage_prebuilt(exporter, Path(prebuilt), tmp)
            for line in info.pop("log_lines", []):
                emit(line)
            runner = runner_class(exporter.runtime)(tmp, device=device, precision=precision, **(runner_options or {}))
            verification = verify_runner(runner, model, tolerance, shapes)
            for line in verification.lines():
                emit(line)
            if report is not None:
                write_text_atomic(report, strict_json({"kind": fmt, "artifact": str(output), "export": info,
                                                       "verification": verification.to_dict()}, indent=2))
            if not verification.passed:
                raise ExportFailed(f"{fmt} export failed verification ({tolerance.describe()}); {output} was not written")
            # the companions go first: the artifact's own rename (leaving the block) is the commit
            for source, target in zip(staged, exporter.companions(output)):
                os.replace(source, target)
        except BaseException:
            for path in staged:
                path.unlink(missing_ok=True)
            raise
    for written in (output, *exporter.companions(output)):
        emit(f"wrote {written}")
    return info, verification


def _stage_prebuilt(exporter: Exporter, source: Path, staged: Path) -> dict[str, Any]:
    """Copy the artifact at ``source`` (every file of it) to the staging name ``staged``; the export info."""
    if not source.is_file():
        raise DMPHNError(f"prebuilt {exporter.format} artifact {source} does not exist")
    shutil.copyfile(source, staged)
    # after the main file: an ONNX graph names its external-data files itself
    for companion, target in zip(exporter.companions(source), exporter.companions(staged)):
        if not companion.is_file():
            raise DMPHNError(f"prebuilt {exporter.format} artifact {source} lacks {companion.name}")
        shutil.copyfile(companion, target)
    return {"prebuilt": str(source)}


__all__ = ["ExportFailed", "Exporter", "export_verified", "exporter_for", "exporters"]
