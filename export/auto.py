"""What ``--runtime auto`` and ``--precision auto --min-psnr DB`` mean: the fastest verified choice here.

For each input size the :class:`AutoRunner` sees, it ranks the candidate (runtime, precision)
pairs: every registered runner that declares an ``auto_rank`` for the device (or the one runtime
named), in each precision both it and its exporter offer, that can run on this machine. Pairs
measured on this machine (``dmphn-bench --record``, :mod:`export.speed_table`) come first, fastest
first; the rest follow in the declared order (``auto_rank``, then fewer bits first). It then takes
the first pair whose quality is verified to meet the floor: fp32 always does (it is the
reference, within 1e-4); any other precision needs the PSNR vs PyTorch fp32 that verifying its
cached artifact recorded (``verified_psnr_db``: the worst of the verification frames, blurred
held-out photos for int8) at or above ``--min-psnr``. An artifact not in the cache yet is exported
and verified first (a one-time cost, kept for later calls, even when it misses this floor). No
floor means fp32 only, as without ``--precision auto``. One line says what was picked and why.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from dmphn_core.artifact import detect_format
from dmphn_core.errors import DMPHNError
from dmphn_core.model import DMPHN
from dmphn_core.precision import PRECISION_TABLE, PRECISIONS
from runtimes import resolve, runner_class, runner_classes
from runtimes.base import Runner

from .cache import ArtifactStore, PerShapeRunner, artifact_cache_dir, auto_rank_of, runner_for_model
from .exporter import exporter_for, exporters
from .speed_table import TableKey, measured_speeds, speed_table_dir

AUTO = "auto"


@dataclass(frozen=True)
class AutoRequest:
    """What the user asked: a runtime key or "auto", a precision or "auto", and a PSNR floor (dB) or None."""

    runtime: str = AUTO
    precision: str = "fp32"
    min_psnr: float | None = None

    def __post_init__(self) -> None:
        if self.min_psnr is not None:
            if self.precision != AUTO:
                raise DMPHNError("--min-psnr is the quality floor of --precision auto; add --precision auto "
                                 "(a named precision is verified against its own bar)")
            if not math.isfinite(self.min_psnr) or self.min_psnr <= 0:
                raise DMPHNError(f"--min-psnr must be a positive number of dB, got {self.min_psnr}")

    @property
    def precisions(self) -> tuple[str, ...]:
        if self.precision != AUTO:
            return (self.precision,)
        return PRECISIONS if self.min_psnr is not None else ("fp32",)  # no floor: fp32 exactness


@dataclass(frozen=True)
class Candidate:
    runtime: str
    precision: str
    #: expected-speed order where nothing was measured: (auto_rank, bits)
    declared: tuple[int, int]

    @property
    def label(self) -> str:
        return f"{self.runtime} {self.precision}"


def auto_candidates(device: str, request: AutoRequest) -> tuple[list[Candidate], list[str]]:
    """``(candidates in declared order, why others that were offered cannot run here)``."""
    found, skipped = [], []
    for key, cls in runner_classes().items():
        named = request.runtime != AUTO
        if named and key != request.runtime:
            continue
        if cls.artifact_format not in exporters():
            continue
        exporter = exporter_for(cls.artifact_format)
        for precision in request.precisions:
            rank = auto_rank_of(cls, device, precision)
            if not named and rank is None:
                continue
            if precision not in exporter.precisions or precision not in cls.precisions or device not in exporter.devices:
                continue
            reason = cls.unavailable_reason(device, precision) or cls.emulation_reason(device, precision)
            if reason:
                skipped.append(f"{key} {precision}: {reason}")
                continue
            found.append(Candidate(key, precision, (rank or 0, PRECISION_TABLE[precision].bits)))
    return sorted(found, key=lambda c: c.declared), skipped


def by_speed(candidates: list[Candidate], speeds: dict[tuple[str, str], float]) -> list[Candidate]:
    """Measured candidates first, fastest first; then the unmeasured ones in declared order."""
    return sorted(candidates, key=lambda c: (0, speeds[(c.runtime, c.precision)], c.declared)
                  if (c.runtime, c.precision) in speeds else (1, 0.0, c.declared))


@dataclass(frozen=True)
class Choice:
    """A chosen (runtime, precision) for one input shape and the one line that says why."""

    runtime: str
    precision: str
    artifact: Path | None  # None: the checkpoint runs directly (the fallback)
    reason: str


def _quality_text(precision: str, psnr: float | None, floor: float | None) -> str:
    if precision == "fp32":
        return "fp32: the PyTorch output within 1e-4"
    text = "identical outputs" if psnr == math.inf else f"{psnr:.1f} dB vs fp32 on its verification frames"
    return text + (f" >= --min-psnr {floor:g}" if floor is not None else "")


def choose(store: ArtifactStore, model: DMPHN, digest: str, shape: tuple[int, ...], device: str,
           request: AutoRequest, speeds: dict[tuple[str, str], float]) -> tuple[Choice, list[Path]]:
    """The first candidate (by :func:`by_speed`) whose verified quality meets the floor, and the
    artifacts built to find out; per-patch PyTorch fp32 (``torch-ref``; ``torch`` on CUDA) when none does."""
    batch, _, height, width = shape
    candidates, passed_over = auto_candidates(device, request)
    built: list[Path] = []
    for candidate in by_speed(candidates, speeds):
        fmt = runner_class(candidate.runtime).artifact_format
        path = store.path(digest, fmt, batch, height, width, device, candidate.precision)
        psnr = store.verified_psnr(path, fmt)
        if psnr is None:  # not built yet: its quality is known only after verifying it
            try:
                path, was_built = store.get(model, fmt, batch, height, width, device, candidate.precision, digest=digest)
            except DMPHNError as exc:
                passed_over.append(f"{candidate.label}: {str(exc).splitlines()[0]}")
                continue
            built += [path] if was_built else []
            psnr = store.verified_psnr(path, fmt)
        floor = request.min_psnr
        if candidate.precision != "fp32" and floor is not None and (psnr is None or psnr < floor):
            passed_over.append(f"{candidate.label}: {psnr:.1f} dB < {floor:g}" if psnr is not None
                               else f"{candidate.label}: no verified PSNR")
            continue
        measured = speeds.get((candidate.runtime, candidate.precision))
        speed = (f"p50 {measured:.0f} ms measured here by dmphn-bench --record" if measured is not None
                 else "speed not measured here (dmphn-bench --record), declared order")
        reason = (f"runtime: {candidate.runtime} on {device}/{candidate.precision} for {height}x{width} "
                  f"({speed}; {_quality_text(candidate.precision, psnr, floor)}"
                  + (f"; passed over: {', '.join(passed_over)}" if passed_over else "") + ")")
        return Choice(candidate.runtime, candidate.precision, path, reason), built
    if request.runtime != AUTO:
        raise DMPHNError(f"runtime {request.runtime} has no verified precision for {height}x{width} here: "
                         + ("; ".join(passed_over) or "it offers none of " + ", ".join(request.precisions)))
    fallback = "torch-ref" if device == "cpu" else "torch"  # on the CPU the per-patch form is the faster eager one
    return Choice(fallback, "fp32", None, f"runtime: {fallback} on {device}/fp32 for {height}x{width} (no faster "
                  f"verified runtime can run here: {'; '.join(passed_over) or 'none registered'})"), built


class AutoRunner(PerShapeRunner):
    """Runs a checkpoint with the (runtime, precision) :func:`choose` picks for each input shape."""

    runtime = "auto"

    def __init__(self, checkpoint: str | os.PathLike, request: AutoRequest, *, store: ArtifactStore, tables: Path,
                 device: str = "cpu", threads: int | None = None, log: Callable[[str], None] | None = print) -> None:
        super().__init__(checkpoint, store=store, device=device, threads=threads, name=f"auto-{device}")
        self.request = request
        self.tables = tables
        self.log = log or (lambda line: None)
        #: the choice made for each input shape, for reports and tests
        self.choices: dict[tuple[int, ...], Choice] = {}

    def _start_runner(self, shape: tuple[int, ...]) -> Runner:
        assert self._model is not None
        batch, _, height, width = shape
        key = TableKey.here(self._digest, height, width, self.device, self.threads, batch=batch)
        speeds = measured_speeds(key, self.tables, self.log)
        choice, built = choose(self.store, self._model, self._digest, shape, self.device, self.request, speeds)
        self.built += built
        self.log(choice.reason)
        self.choices[shape] = choice
        self.precision = choice.precision
        self.name = f"{choice.runtime}-{self.device}-{choice.precision} (auto)"
        source = choice.artifact if choice.artifact is not None else self._model
        return runner_class(choice.runtime)(source, device=self.device, precision=choice.precision, threads=self.threads)


def runner_for_request(
    model: str | os.PathLike | None,
    runtime: str | None = AUTO,
    device: str | None = None,
    precision: str | None = None,
    *,
    min_psnr: float | None = None,
    threads: int | None = None,
    cache: str | os.PathLike | None = None,
    log: Callable[[str], None] | None = print,
) -> Runner:
    """The runner ``dmphn-deblur`` / ``dmphn-eval`` / the demo use: :class:`AutoRunner` for a checkpoint
    with ``--runtime auto`` or ``--precision auto``; :func:`export.cache.runner_for_model` otherwise."""
    request = AutoRequest(runtime or AUTO, precision or "fp32", min_psnr)  # checks --min-psnr
    path = Path(model) if model is not None else resolve.DEMO_CHECKPOINT  # the one place naming the default model
    is_checkpoint = path.is_file() and detect_format(path) == "checkpoint"
    if is_checkpoint and AUTO in (request.runtime, request.precision):
        if request.runtime != AUTO and runner_class(request.runtime).artifact_format not in exporters():
            raise DMPHNError(f"--precision auto picks among cached exports; runtime {request.runtime} runs the "
                             "checkpoint directly: name a precision instead")
        device = "cuda" if device in (None, AUTO) and torch.cuda.is_available() else (device or "cpu")
        device = "cpu" if device == AUTO else device
        store = ArtifactStore(artifact_cache_dir(cache), log=log)
        return AutoRunner(path, request, store=store, tables=speed_table_dir(cache), device=device, threads=threads, log=log)
    if request.precision == AUTO:
        if path.exists() and not is_checkpoint:
            raise DMPHNError(f"--precision auto chooses among exports of a checkpoint; {path} is an exported "
                             "artifact, which runs in the precision it was built in (leave out --precision)")
        return runner_for_model(model, runtime, device, None, threads=threads, cache=cache, log=log)  # says what is missing
    return runner_for_model(model, runtime, device, precision, threads=threads, cache=cache, log=log)


__all__ = ["AUTO", "AutoRequest", "AutoRunner", "Candidate", "Choice", "auto_candidates", "by_speed", "choose",
           "runner_for_request"]
