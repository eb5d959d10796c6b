"""Turn (runtime, device, precision, shape) into a ready-to-activate runner.

Artifacts (ONNX, TorchScript, .pt2, engines) are exported and verified from one checkpoint into
a work folder (an artifact store: keyed by the weights' digest, toolkit version and exporter
recipe, every file hashed), once per shape, and the time each build took is kept for the report:
compile cost is reported apart from latency. Which artifact a runtime needs, and which options it
takes, its runner class says (``artifact_format``, ``options``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dmphn_core.checkpoint import DEMO_CHECKPOINT, Checkpoint, describe_weights, load_checkpoint
from dmphn_core.errors import DMPHNError, RuntimeUnavailable
from dmphn_core.model import DMPHN
from dmphn_core.precision import PRECISIONS
from export.cache import ArtifactStore, model_digest
from export.exporter import exporter_for
from runtimes import runner_class, runtime_names
from runtimes.base import Runner


def parse_list(text: str, allowed: tuple[str, ...] | list[str], what: str, all_means: tuple[str, ...] | None = None) -> list[str]:
    """``"a,b"`` -> ``["a", "b"]`` checked against ``allowed``; ``"all"`` -> ``all_means``."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if items == ["all"] and all_means is not None:
        return list(all_means)
    unknown = [item for item in items if item not in allowed]
    if unknown or not items:
        raise DMPHNError(f"unknown {what} {', '.join(unknown) or repr(text)}; use one of {', '.join(allowed)}")
    return items


def parse_runtimes(text: str) -> list[str]:
    return parse_list(text, [*runtime_names(), "all"], "runtime", all_means=runtime_names())


def parse_precisions(text: str) -> list[str]:
    return parse_list(text, PRECISIONS, "precision")


def parse_shape(text: str) -> tuple[int, int]:
    """``"720x1280"`` -> ``(720, 1280)``."""
    try:
        height, width = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise DMPHNError(f"shape must look like HEIGHTxWIDTH (e.g. 720x1280), got {text!r}") from None
    if height <= 0 or width <= 0:
        raise DMPHNError(f"shape must be positive, got {text!r}")
    return height, width


@dataclass(frozen=True)
class RunnerSpec:
    """One column of a report: which runtime, on what, at which precision, with which options."""

    runtime: str
    device: str
    precision: str
    compile_mode: str = "default"
    cuda_graph: bool = False
    #: run a pair this machine can only emulate (e.g. bf16 on a CPU without bf16 instructions)
    allow_emulated: bool = False
    #: NHWC weights and input (None: the runner's default); Inductor weight freezing
    channels_last: bool | None = None
    freezing: bool = False

    @property
    def runner_options(self) -> dict[str, Any]:
        """The options this spec sets that its runner declares (``Runner.options``)."""
        given = {"mode": self.compile_mode, "cuda_graph": self.cuda_graph, "freezing": self.freezing}
        if self.channels_last is not None:
            given["channels_last"] = self.channels_last
        try:
            declared = runner_class(self.runtime).options
        except DMPHNError:
            declared = ()
        return {key: value for key, value in given.items() if key in declared}

    @property
    def label(self) -> str:
        options = self.runner_options
        label = self.runtime
        if options.get("mode", "default") != "default":
            label += f"[{options['mode']}]"
        if options.get("cuda_graph"):
            label += "+graph"
        if "channels_last" in options:
            label += "+nhwc" if options["channels_last"] else "+nchw"
        if options.get("freezing"):
            label += "+frozen"
        return f"{label}-{self.device}-{self.precision}"

    def unavailable_reason(self) -> str | None:
        try:
            cls = runner_class(self.runtime)
        except ImportError as exc:
            return f"runner module for {self.runtime} cannot be imported ({exc})"
        if cls.needs_service:
            return f"{self.runtime} is a client of {cls.needs_service}"
        reason = cls.unavailable_reason(self.device, self.precision)
        if reason is None and not self.allow_emulated:
            emulated = cls.emulation_reason(self.device, self.precision)
            reason = f"{emulated} (--allow-emulated runs it anyway)" if emulated else None
        return reason


@dataclass
class ArtifactCache:
    """Exports each artifact once per (model, format, batch, shape, device, precision, toolkit version,
    exporter recipe) into ``workdir``, an :class:`export.cache.ArtifactStore`.

    Every artifact goes through :func:`export.exporter.export_verified`, so a report never
    times a file that disagrees with PyTorch; the build time (export + verification) is kept.
    The store keys entries by the weights' digest and hashes every file of each entry, so a work
    folder reused with other weights, a newer toolkit or a changed exporter recipe builds afresh,
    and a changed or damaged file is rebuilt, never timed.
    """

    checkpoint: Path | None
    workdir: Path
    build_seconds: dict[str, float] = field(default_factory=dict)
    #: a per-user :class:`export.cache.ArtifactStore` to take artifacts from instead of ``workdir``
    #: (``dmphn-bench --record``: time exactly what ``--runtime auto`` runs)
    store: ArtifactStore | None = None
    _model: DMPHN | None = None
    _loaded: Checkpoint | None = None
    _digest: str | None = None

    def _checkpoint(self) -> Checkpoint:
        if self._loaded is None:
            self._loaded = load_checkpoint(self.checkpoint or DEMO_CHECKPOINT)
        return self._loaded

    @property
    def model(self) -> DMPHN:
        if self._model is None:
            self._model = self._checkpoint().build_model()
        return self._model

    @property
    def digest(self) -> str:
        """The model's content digest, the store's first key (computed once: it hashes every weight)."""
        if self._digest is None:
            self._digest = model_digest(self.model)
        return self._digest

    @property
    def weights(self) -> str:
        """Which weights every row ran (e.g. the authors' variant and commit), for the reports."""
        return describe_weights(self._checkpoint(), self.checkpoint)

    def artifact(self, fmt: str, batch: int, height: int, width: int, device: str, precision: str) -> Path:
        """The verified artifact of ``fmt`` for these settings, built on first use.

        A format that builds one precision only (a float32 ONNX graph) is built in fp32 and the
        runtime applies the precision; an exporter that runs on one device only builds there.
        """
        exporter = exporter_for(fmt)
        precision = precision if precision in exporter.precisions else "fp32"
        device = device if device in exporter.devices else exporter.devices[0]
        # --record: exactly the entries --runtime auto runs (self.store), at their own bars
        store = self.store or ArtifactStore(self.workdir)
        options: dict[str, Any] = {}
        if self.store is None and precision == "int8":
            # A quantized artifact's quality is what parity reports, against its own bar; here it is
            # only refused when it is broken (non-finite, or nothing like the model: under 0 dB).
            options["min_psnr"] = 0.0
        if exporter.source_format is not None:  # e.g. an engine is built from the stored ONNX
            options["source"] = self.artifact(exporter.source_format, batch, height, width, device, "fp32")
        begin = time.perf_counter()
        path, built = store.get(self.model, fmt, batch, height, width, device, precision, digest=self.digest, **options)
        if built:
            self.build_seconds[path.name] = time.perf_counter() - begin
        return path

    def seconds_for(self, path: Path) -> float | None:
        return self.build_seconds.get(path.name)


def make_runner(
    spec: RunnerSpec, cache: ArtifactCache, batch: int, height: int, width: int, threads: int | None = None
) -> tuple[Runner, float | None]:
    """Build the artifact ``spec`` needs (if any) and return ``(runner, build_seconds)``.

    Raises RuntimeUnavailable with the reason when the runtime cannot run here.
    """
    reason = spec.unavailable_reason()
    if reason:
        raise RuntimeUnavailable(reason)
    cls = runner_class(spec.runtime)
    if cls.artifact_format in (None, "checkpoint"):
        source: Any = cache.model
        build_seconds = None
    else:
        source = cache.artifact(cls.artifact_format, batch, height, width, spec.device, spec.precision)
        build_seconds = cache.seconds_for(source)
    runner = cls(source, device=spec.device, precision=spec.precision, name=spec.label, threads=threads,
                 **spec.runner_options)
    return runner, build_seconds


def default_workdir() -> Path:
    return Path(os.environ.get("DMPHN_WORKDIR", ".dmphn_artifacts"))
