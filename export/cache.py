"""A per-user cache of verified artifacts, and the runner that serves a checkpoint from it.

Artifacts are keyed by (checkpoint content, format, device, precision, shape, toolkit version, the
exporter's recipe revision):
built once by :func:`export.exporter.export_verified`, verified once, and reused by every later
call. Each entry has a record (``<artifact>.verified.json``) with the sha256 of every file the
artifact consists of (:func:`dmphn_core.artifact.artifact_files`: the OpenVINO ``.bin``, the
TensorRT sidecar, ONNX external data, not only the main file), checked on each use; an entry whose
record is missing or unreadable, whose files no longer match it, or that its runtime cannot load is
rebuilt, never trusted. Temporaries that a killed export left in the cache are removed
(:func:`dmphn_core.fileio.remove_stale_temporaries`; never one a live process is writing).

:class:`CachedArtifactRunner` runs a checkpoint through an exported runtime: at each new input
shape it takes (or builds) the static artifact for that shape, so whole images of any size run
on static-shape artifacts. What ``--runtime auto`` and ``--precision auto`` mean is
:mod:`export.auto`; :func:`pick_fast_runtime` is its declared-order answer for one precision.
"""

from __future__ import annotations

import abc
import hashlib
import itertools
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from dmphn_core import __version__
from dmphn_core.artifact import artifact_files
from dmphn_core.checkpoint import load_checkpoint
from dmphn_core.errors import DMPHNError, RuntimeUnavailable, exception_line
from dmphn_core.fileio import CACHE_ENV, file_sha256, remove_stale_temporaries, strict_json, user_cache_dir, write_text_atomic
from dmphn_core.model import DMPHN
from runtimes import runner_class, runner_classes
from runtimes.base import Runner

from .exporter import export_verified, exporter_for, exporters

RECORD_SUFFIX = ".verified.json"


def artifact_cache_dir(cache: str | os.PathLike | None = None) -> Path:
    """``artifacts/`` inside the cache folder ``cache`` (default: :func:`dmphn_core.fileio.user_cache_dir`)."""
    return Path(cache if cache is not None else user_cache_dir()) / "artifacts"


def file_hashes(path: Path, fmt: str) -> dict[str, str]:
    """``{file name: sha256}`` of every file the artifact at ``path`` consists of (OSError if one is missing)."""
    return {file.name: file_sha256(file) for file in artifact_files(path, fmt)}


def model_digest(model: DMPHN) -> str:
    """Content hash of a model's config and weights (what the artifact is a function of)."""
    digest = hashlib.sha256(json.dumps(model.config.to_dict(), sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


@dataclass
class ArtifactStore:
    """Verified artifacts under ``root/<model digest>/``; ``log`` hears hits, builds and rebuilds;
    ``notice`` (stderr by default: terminals and logs) hears that a one-time export starts."""

    root: Path
    log: Callable[[str], None] | None = None
    notice: Callable[[str], None] = field(default=lambda line: print(line, file=sys.stderr, flush=True))

    def path(self, digest: str, fmt: str, batch: int, height: int, width: int, device: str, precision: str) -> Path:
        exporter = exporter_for(fmt)
        recipe = f"r{exporter.recipe}" if exporter.recipe else ""
        return (self.root / digest
                / f"{fmt}_{device}_{precision}_b{batch}_{height}x{width}_v{__version__}{recipe}{exporter.suffix}")

    def get(self, model: DMPHN, fmt: str, batch: int, height: int, width: int, device: str, precision: str,
            *, digest: str | None = None, **options: Any) -> tuple[Path, bool]:
        """``(path, built)``: the verified artifact for these settings, built here when missing or stale."""
        digest = digest or model_digest(model)
        path = self.path(digest, fmt, batch, height, width, device, precision)
        for stale in remove_stale_temporaries(path.parent):
            self._say(f"cache: removed {stale.name}, left by an export that was killed")
        problem = self._problem(path, fmt)
        if problem is None:
            self._say(f"cache hit: {path}")
            return path, False
        if problem != "missing":
            self.invalidate(path, fmt, problem)
        return self._build(model, fmt, path, batch, height, width, device, precision, **options), True

    def adopt(self, model: DMPHN, fmt: str, source: str | os.PathLike, batch: int, height: int, width: int, device: str,
              precision: str, *, digest: str | None = None, **options: Any) -> Path:
        """Take an artifact built elsewhere (another process or machine) in as the entry for these settings:
        verified against ``model`` like an export (``options``: the verification's, e.g. ``min_psnr``)
        and hashed, replacing any entry there; or refused (:class:`export.exporter.ExportFailed`,
        :class:`DMPHNError` for missing files), the store left as it was."""
        digest = digest or model_digest(model)
        path = self.path(digest, fmt, batch, height, width, device, precision)
        return self._build(model, fmt, path, batch, height, width, device, precision, prebuilt=Path(source), **options)

    def _build(self, model: DMPHN, fmt: str, path: Path, batch: int, height: int, width: int, device: str,
               precision: str, **options: Any) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        options = {**exporter_for(fmt).cache_options(self.root), **options}  # e.g. one TensorRT timing cache for all models
        prebuilt = options.get("prebuilt")  # adopt(): built elsewhere, only verified here
        if prebuilt is not None:
            self.notice(f"verifying {prebuilt} as the {fmt} {precision} artifact for {width}x{height} WxH on {device}")
        else:
            self.notice(f"one-time export: building and verifying the {fmt} {precision} artifact for {width}x{height} WxH "
                        f"on {device}; later calls at this size reuse it{self._last_export(fmt, device, precision)}")
        started = time.perf_counter()
        _, verification = export_verified(fmt, model, path, batch=batch, height=height, width=width, device=device,
                                          precision=precision, log=None, **options)
        record = {"files": file_hashes(path, fmt), "format": fmt, "toolkit": __version__, "torch": torch.__version__,
                  "shape": [batch, 3, height, width], "verified_psnr_db": verification.min_psnr_db,
                  "verification": verification.to_dict()}
        if prebuilt is not None:
            record["prebuilt"] = str(prebuilt)  # no export time: it was built elsewhere
        else:
            record["export_seconds"] = round(time.perf_counter() - started, 1)
        write_text_atomic(self._record(path), strict_json(record, indent=2))
        self._say(f"cache: {'built and ' if prebuilt is None else ''}verified {path}")
        return path

    def invalidate(self, path: Path, fmt: str, problem: str) -> None:
        """Drop the entry at ``path`` (``problem`` says why) so that the next :meth:`get` rebuilds it."""
        self._say(f"cache entry {path.name} is {problem}; rebuilding it")
        self._remove(path, fmt)

    def _last_export(self, fmt: str, device: str, precision: str) -> str:
        """`` (the last one here, WxH, took N s)`` from the newest record of this kind that kept its time, else ""."""
        records = sorted(self.root.glob(f"*/{fmt}_{device}_{precision}_*{RECORD_SUFFIX}"),
                         key=lambda p: p.stat().st_mtime, reverse=True)
        for record_path in records:
            try:
                record = json.loads(record_path.read_text())
                seconds, (_, _, height, width) = float(record["export_seconds"]), record["shape"]
            except (OSError, ValueError, KeyError, TypeError):
                continue  # older records have no time: say nothing rather than guess
            return f" (the last one here, {width}x{height} WxH, took {seconds:.0f} s)"
        return ""

    def verified_psnr(self, path: Path, fmt: str) -> float | None:
        """The lowest PSNR (dB) vs PyTorch fp32 that the entry at ``path`` verified with (inf: identical);
        None when there is no trustworthy entry there."""
        if self._problem(path, fmt) is not None:
            return None
        return recorded_psnr(json.loads(self._record(path).read_text()))

    def _problem(self, path: Path, fmt: str) -> str | None:
        """None when the entry can be trusted; else what is wrong with it."""
        record_path = self._record(path)
        if not path.is_file() and not record_path.exists():
            return "missing"
        try:
            recorded = json.loads(record_path.read_text())["files"]
            if not isinstance(recorded, dict):
                raise TypeError
        except (OSError, ValueError, KeyError, TypeError):
            return "unverified (no readable record of its files)"
        try:
            actual = file_hashes(path, fmt)
        except OSError:
            return "incomplete (a file of it is missing or unreadable)"
        if actual != recorded:
            changed = sorted(set(actual) ^ set(recorded) | {n for n in actual if actual[n] != recorded.get(n)})
            return f"corrupt ({', '.join(changed)} no longer match the record)"
        return None

    def _remove(self, path: Path, fmt: str) -> None:
        folder = path.parent.resolve()
        for stale in (*artifact_files(path, fmt), *exporter_for(fmt).companions(path), self._record(path)):
            if stale.resolve().parent != folder:
                continue  # never delete outside the entry's own folder, whatever a damaged file names
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


def recorded_psnr(record: dict[str, Any]) -> float:
    """The PSNR (dB) an entry's record says its verification reached at worst (inf: identical outputs).

    Records written before ``verified_psnr_db`` existed are read from their verification cases.
    """
    if "verified_psnr_db" in record:
        value = record["verified_psnr_db"]
    else:
        values = [case.get("psnr_db") for case in record["verification"]["cases"]]
        value = min((v for v in values if v is not None), default=None)
    return math.inf if value is None else float(value)


class PerShapeRunner(Runner):
    """Runs a checkpoint through one inner runner per input shape, started by :meth:`_start_runner`.

    Whole images of any size run on static-shape artifacts this way. Not in the registry.
    """

    runtime = "cached"

    def __init__(self, checkpoint: str | os.PathLike | Callable[[], DMPHN], *, store: ArtifactStore,
                 device: str = "cpu", precision: str = "fp32", threads: int | None = None, name: str | None = None) -> None:
        super().__init__(device=device, precision=precision, threads=threads, name=name)
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
        return self._runner_for(tuple(x.shape)).infer(x)

    def _runner_for(self, shape: tuple[int, ...]) -> Runner:
        runner = self._runners.get(shape)
        if runner is None:
            runner = self._started_runner(shape)
            self._runners[shape] = runner
        return runner

    def _started_runner(self, shape: tuple[int, ...]) -> Runner:
        """The active runner for ``shape``; a cached artifact its runtime cannot load is rebuilt once."""
        for attempt in (1, 2):
            built_before = len(self.built)
            runner = self._start_runner(shape)
            if self.throughput:
                runner.prefer_throughput(self.streams)
            try:
                runner.activate()
                return runner
            except RuntimeUnavailable:
                raise  # the runtime, not the entry, is the problem
            except Exception as exc:  # noqa: BLE001 - any load failure of a cached file means a bad entry
                path = getattr(runner, "path", None)
                cached = isinstance(path, Path) and self.store.root.resolve() in path.resolve().parents
                if attempt == 2 or len(self.built) > built_before or not cached:
                    raise  # just built (the export itself is wrong), or not the cache's file: no retry
                reason = exception_line(exc)
                self.store.invalidate(path, runner.artifact_format, f"not loadable ({reason})")
        raise AssertionError("unreachable: the second attempt returns or raises")

    def infer_stream(self, inputs):
        """The inner runner's stream (its own concurrency); every input has the first one's shape."""
        if not self.is_active:
            raise DMPHNError(f"runner {self.name} is not active; use it in a `with` block or call activate()")
        inputs = iter(inputs)
        first = next(inputs, None)
        if first is None:
            return
        yield from self._runner_for(tuple(first.shape)).infer_stream(itertools.chain([first], inputs))

    def concurrency(self) -> dict[str, int | None]:
        runners = list(self._runners.values())  # the latest shape run tells; none run yet: sequential
        return runners[-1].concurrency() if runners else super().concurrency()

    @abc.abstractmethod
    def _start_runner(self, shape: tuple[int, ...]) -> Runner:
        """A (not yet active) runner for inputs of ``shape`` (B, 3, H, W)."""

    def _artifact(self, fmt: str, shape: tuple[int, ...], precision: str) -> Path:
        """The verified artifact of ``fmt`` for ``shape``, from the store (built here when missing)."""
        assert self._model is not None
        batch, _, height, width = shape
        path, built = self.store.get(self._model, fmt, batch, height, width, self.device, precision, digest=self._digest)
        if built:
            self.built.append(path)
        return path

    def _deactivate(self) -> None:
        for runner in self._runners.values():
            runner.deactivate()
        self._runners.clear()
        self._model = None


class CachedArtifactRunner(PerShapeRunner):
    """Runs a checkpoint with an artifact runtime, one cached static artifact per input shape.

    Not in the registry: it wraps a registered runtime (``inner``) and is made by naming an
    artifact runtime with a checkpoint (``--runtime auto`` uses :class:`export.auto.AutoRunner`).
    """

    def __init__(self, checkpoint: str | os.PathLike | Callable[[], DMPHN], inner: str, *, store: ArtifactStore,
                 device: str = "cpu", precision: str = "fp32", threads: int | None = None, name: str | None = None) -> None:
        super().__init__(checkpoint, store=store, device=device, precision=precision, threads=threads,
                         name=name or f"{inner}-{device}-{precision} (cached artifacts)")
        self.inner = inner
        self.inner_class = runner_class(inner)
        if self.inner_class.artifact_format not in exporters():
            raise DMPHNError(f"runtime {inner} runs no exported artifact; nothing to cache")

    def _start_runner(self, shape: tuple[int, ...]) -> Runner:
        path = self._artifact(self.inner_class.artifact_format, shape, self.precision)
        return self.inner_class(path, device=self.device, precision=self.precision, threads=self.threads)

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
    """The runner for a model argument with a named runtime and precision (:func:`export.auto.runner_for_request`
    handles ``auto`` for the commands).

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


__all__ = ["ArtifactStore", "CACHE_ENV", "CachedArtifactRunner", "PerShapeRunner", "artifact_cache_dir", "file_hashes",
           "model_digest", "pick_fast_runtime", "recorded_psnr", "runner_for_model"]
