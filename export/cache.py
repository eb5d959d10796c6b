"""A per-user cache of verified artifacts, and the runner that serves a checkpoint from it.

Artifacts are keyed by (checkpoint content, format, device, precision, shape, toolkit version):
built once by :func:`export.exporter.export_verified`, verified once, and reused by every later
call. Each entry has a record (``<artifact>.verified.json``) with the artifact's sha256; an entry
whose record is missing, unreadable or whose file no longer matches it is rebuilt, never trusted.

:class:`CachedArtifactRunner` runs a checkpoint through an exported runtime: at each new input
shape it takes (or builds) the static artifact for that shape, so whole images of any size run
on static-shape artifacts. :func:`pick_fast_runtime` is what ``--runtime auto`` means.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dmphn_core import __version__
from dmphn_core.checkpoint import load_checkpoint
from dmphn_core.errors import DMPHNError
from dmphn_core.fileio import CACHE_ENV, file_sha256, user_cache_dir, write_text_atomic
from dmphn_core.model import DMPHN
from runtimes import runner_class, runner_classes
from runtimes.base import Runner

from .exporter import export_verified, exporter_for, exporters

RECORD_SUFFIX = ".verified.json"


def artifact_cache_dir(cache: str | os.PathLike | None = None) -> Path:
    """``artifacts/`` inside the cache folder ``cache`` (default: :func:`dmphn_core.fileio.user_cache_dir`)."""
    return Path(cache if cache is not None else user_cache_dir()) / "artifacts"


def model_digest(model: DMPHN) -> str:
    """Content hash of a model's config and weights (what the artifact is a function of)."""
    digest = hashlib.sha256(json.dumps(model.config.to_dict(), sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


@dataclass
class ArtifactStore:
    """Verified artifacts under ``root/<model digest>/``; ``log`` hears hits, builds and rebuilds."""

    root: Path
    log: Callable[[str], None] | None = None

    def path(self, digest: str, fmt: str, batch: int, height: int, width: int, device: str, precision: str) -> Path:
        suffix = exporter_for(fmt).suffix
        return self.root / digest / f"{fmt}_{device}_{precision}_b{batch}_{height}x{width}_v{__version__}{suffix}"

    def get(self, model: DMPHN, fmt: str, batch: int, height: int, width: int, device: str, precision: str,
            *, digest: str | None = None, **options: Any) -> tuple[Path, bool]:
        """``(path, built)``: the verified artifact for these settings, built here when missing or stale."""
        digest = digest or model_digest(model)
        path = self.path(digest, fmt, batch, height, width, device, precision)
        problem = self._problem(path, fmt)
        if problem is None:
            self._say(f"cache hit: {path}")
            return path, False
        if problem != "missing":
            self._say(f"cache entry {path.name} is {problem}; rebuilding it")
            self._remove(path, fmt)
        path.parent.mkdir(parents=True, exist_ok=True)
        _, verification = export_verified(fmt, model, path, batch=batch, height=height, width=width, device=device,
                                          precision=precision, log=None, **options)
        record = {"sha256": file_sha256(path), "format": fmt, "toolkit": __version__, "torch": torch.__version__,
                  "verification": verification.to_dict()}
        write_text_atomic(self._record(path), json.dumps(record, indent=2, default=str))
        self._say(f"cache: built and verified {path}")
        return path, True

    def _problem(self, path: Path, fmt: str) -> str | None:
        """None when the entry can be trusted; else what is wrong with it."""
        record_path = self._record(path)
        if not path.is_file() and not record_path.exists():
            return "missing"
        try:
            record = json.loads(record_path.read_text())
            recorded = record["sha256"]
        except (OSError, ValueError, KeyError, TypeError):
            return "unverified (no readable record)"
        if not path.is_file() or file_sha256(path) != recorded:
            return "corrupt (its content no longer matches the record)"
        if any(not companion.is_file() for companion in exporter_for(fmt).companions(path)):
            return "incomplete (a companion file is missing)"
        return None

    def _remove(self, path: Path, fmt: str) -> None:
        for stale in (path, self._record(path), *exporter_for(fmt).companions(path)):
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)

    @staticmethod
    def _record(path: Path) -> Path:
        return path.with_name(path.name + RECORD_SUFFIX)

    def _say(self, line: str) -> None:
        if self.log is not None:
            self.log(line)


class CachedArtifactRunner(Runner):
    """Runs a checkpoint with an artifact runtime, one cached static artifact per input shape.

    Not in the registry: it wraps a registered runtime (``inner``) and is made by
    ``--runtime auto`` or by naming an artifact runtime with a checkpoint.
    """

    runtime = "cached"

    def __init__(self, checkpoint: str | os.PathLike | Callable[[], DMPHN], inner: str, *, store: ArtifactStore,
                 device: str = "cpu", precision: str = "fp32", threads: int | None = None, name: str | None = None) -> None:
        super().__init__(device=device, precision=precision, threads=threads,
                         name=name or f"{inner}-{device}-{precision} (cached artifacts)")
        self.inner = inner
        self.inner_class = runner_class(inner)
        if self.inner_class.artifact_format not in exporters():
            raise DMPHNError(f"runtime {inner} runs no exported artifact; nothing to cache")
        self._source = checkpoint
        self.store = store
        self._model: DMPHN | None = None
        self._digest = ""
        self._runners: dict[tuple[int, ...], Runner] = {}
        #: artifacts built (not found in the cache) by this runner, for reports and tests
        self.built: list[Path] = []

    def _activate(self) -> None:
        source = self._source
        self._model = source() if callable(source) else load_checkpoint(source).build_model()
        self._digest = model_digest(self._model)
        self.model_config = self._model.config

    def _infer(self, x: torch.Tensor) -> torch.Tensor:
        shape = tuple(x.shape)
        runner = self._runners.get(shape)
        if runner is None:
            assert self._model is not None
            fmt = self.inner_class.artifact_format
            batch, _, height, width = shape
            path, built = self.store.get(self._model, fmt, batch, height, width, self.device, self.precision,
                                         digest=self._digest)
            if built:
                self.built.append(path)
            runner = self.inner_class(path, device=self.device, precision=self.precision, threads=self.threads)
            runner.activate()
            self._runners[shape] = runner
        return runner.infer(x)

    def _deactivate(self) -> None:
        for runner in self._runners.values():
            runner.deactivate()
        self._runners.clear()
        self._model = None

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "runtime": self.inner, "cache": str(self.store.root)}


def auto_rank_of(cls: type[Runner], device: str, precision: str) -> int | None:
    """A runner's ``auto_rank`` for ``device`` at ``precision``: ``"device:precision"`` wins over ``"device"``."""
    return cls.auto_rank.get(f"{device}:{precision}", cls.auto_rank.get(device))


def pick_fast_runtime(device: str, precision: str) -> tuple[str, str]:
    """``(runtime, why)``: the fastest exported runtime that can run here, or per-patch PyTorch.

    Candidates are the runners that declare an ``auto_rank`` for ``device`` (their measured place
    among this toolkit's fast paths; lower first), offer ``precision`` and are installed here.
    """
    candidates = sorted(
        (rank, key) for key, cls in runner_classes().items()
        if (rank := auto_rank_of(cls, device, precision)) is not None and cls.artifact_format in exporters()
    )
    skipped = []
    for _, key in candidates:
        reason = runner_class(key).unavailable_reason(device, precision)
        if reason is None:
            return key, f"fastest verified {precision} runtime installed for {device} here"
        skipped.append(f"{key}: {reason}")
    fallback = "torch-ref" if device == "cpu" else "torch"  # on the CPU the per-patch form is the faster eager one
    return fallback, "no faster runtime can run here (" + ("; ".join(skipped) or "none registered") + ")"


def runner_for_model(
    model: str | os.PathLike | None,
    runtime: str | None = "auto",
    device: str | None = None,
    precision: str | None = None,
    *,
    threads: int | None = None,
    cache: str | os.PathLike | None = None,
    log: Callable[[str], None] | None = print,
) -> Runner:
    """The runner ``dmphn-deblur`` / ``dmphn-eval`` / the demo use for a model argument.

    An exported artifact runs with its own runtime (:func:`runtimes.resolve.resolve_runner`). A
    checkpoint (None: the shipped demo model) runs with ``runtime``: "auto" picks the fastest
    verified runtime here (:func:`pick_fast_runtime`) and says which in one line; an artifact
    runtime gets its artifacts from the cache (``artifacts/`` in ``cache``, default :func:`dmphn_core.fileio.user_cache_dir`),
    built and verified on first use; a PyTorch runtime runs the checkpoint directly.
    """
    from dmphn_core.artifact import detect_format
    from runtimes import resolve

    path = Path(model) if model is not None else resolve.DEMO_CHECKPOINT  # one place names the default model
    is_checkpoint = path.is_file() and detect_format(path) == "checkpoint"
    if not is_checkpoint:  # an artifact (or a missing/odd file: resolve_runner says what is wrong)
        return resolve.resolve_runner(model, None if runtime == "auto" else runtime, device, precision, threads=threads)
    precision = precision or "fp32"
    if runtime in (None, "auto"):
        device = "cuda" if device in (None, "auto") and torch.cuda.is_available() else (device or "cpu")
        device = "cpu" if device == "auto" else device
        runtime, why = pick_fast_runtime(device, precision)
        if log is not None:
            log(f"runtime: {runtime} on {device}/{precision} ({why})")
    cls = runner_class(runtime)
    if cls.artifact_format == "checkpoint":
        return resolve.resolve_runner(path, runtime, device, precision, threads=threads)
    device = cls.resolve_device(device)
    reason = cls.unavailable_reason(device, precision)
    if reason:
        raise DMPHNError(f"runtime {runtime} cannot run on {device}/{precision}: {reason}")
    store = ArtifactStore(artifact_cache_dir(cache), log=log)
    return CachedArtifactRunner(path, runtime, store=store, device=device, precision=precision, threads=threads)


__all__ = ["ArtifactStore", "CACHE_ENV", "CachedArtifactRunner", "artifact_cache_dir", "model_digest", "pick_fast_runtime", "runner_for_model"]
