"""ONNX -> TensorRT engine with the TensorRT 10 Python API, plus a JSON sidecar.

Precisions: ``fp32`` (TF32 switched off: TensorRT enables it by default), ``tf32`` and
``fp16``. A dynamic batch gets one optimisation profile ``1 .. max_batch`` (opt = batch).
The workspace is TensorRT's default (all of the GPU's memory) unless capped: a cap prunes the
tactics that need more scratch memory, at 720p the fastest ones among them.

FP16 overflow guard: before an fp16 build the ONNX graph runs in ONNX Runtime (fp32, CPU)
on blurred frames (camera-shake blur of the bundled held-out photos: what a deblurring model
is deployed on, :func:`export.verify.natural_inputs`) with the largest |value| of every intermediate
tensor exposed as an extra output (:mod:`export.fp16_guard`). Tensors past ``FP16_SAFE_MAX``
are the overflowing set; every TensorRT layer that reads or writes one of them is pinned to
fp32 (layer precision and output types), so the engine computes instead of returning inf/NaN.
``precision_constraints="obey"`` (default) makes the pins binding: the build fails when a
pinned layer has no fp32 implementation; ``"prefer"`` lets TensorRT break a pin it cannot keep
(with a warning in its log); the sidecar records which one ran. Layers
are found by tensor, not by name: at most one layer of a node carries the node's name (the
ONNX parser makes the names of a node's further layers unique, or names them after its own
helpers, and calls an unnamed node ``node_of_<output>``), so the further layers of a node that
expands to several are reached through the parser-made tensors (names absent from the ONNX
graph) that join them to a pinned layer.

Everything that touches TensorRT needs the ``tensorrt`` package, TensorRT 10.x (the builder,
not the lean runtime; see :mod:`runtimes.tensorrt_compat` for why not 11), and a CUDA GPU;
:func:`check_tensorrt_available` says which one is missing.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import onnx
import torch

from dmphn_core.artifact import INPUT_NAME, OUTPUT_NAME, artifact_metadata, sidecar_path
from dmphn_core.errors import DMPHNError, RuntimeUnavailable
from dmphn_core.fileio import write_bytes_atomic, write_text_atomic
from dmphn_core.model import DMPHN
from dmphn_core.precision import check_precision
from runtimes.tensorrt import TensorRTRunner
from runtimes.tensorrt_compat import INSTALL_HINT, unsupported_version_reason

from .exporter import Exporter
from .fp16_guard import fp16_overflow_report
from .trt_timing_cache import attach_timing_cache, cache_options, save_timing_cache

#: How binding the fp32 pins of the overflow guard are: TensorRT's OBEY / PREFER_PRECISION_CONSTRAINTS.
PRECISION_CONSTRAINTS = {"obey": "OBEY_PRECISION_CONSTRAINTS", "prefer": "PREFER_PRECISION_CONSTRAINTS"}


# -- availability ------------------------------------------------------------------------
def check_tensorrt_available():
    """Return the ``tensorrt`` module, or raise RuntimeUnavailable naming what is missing."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise RuntimeUnavailable(
            f"TensorRT engine builds need the `tensorrt` Python package (TensorRT 10 builder), which is not "
            f"installed here ({exc}); {INSTALL_HINT}"
        ) from None
    if not hasattr(trt, "Builder"):
        raise RuntimeUnavailable(
            "the installed `tensorrt` package has no Builder (a lean/dispatch runtime only); "
            "engine builds need the full TensorRT 10 package"
        )
    reason = unsupported_version_reason(getattr(trt, "__version__", "unknown"))
    if reason:
        raise RuntimeUnavailable(reason)
    if not torch.cuda.is_available():
        raise RuntimeUnavailable("TensorRT engine builds need a CUDA GPU; torch.cuda.is_available() is False here")
    return trt


# -- engine build (TensorRT; never run on the CPU-only development host) -------------------
def _collecting_logger(trt, min_severity):
    """A TensorRT logger that keeps its messages for the build log."""

    class CollectingLogger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.lines: list[str] = []

        def log(self, severity, msg) -> None:
            if int(severity) <= int(min_severity):
                self.lines.append(f"[{getattr(severity, 'name', severity)}] {msg}")

    return CollectingLogger()


def _onnx_input_dims(onnx_path: Path) -> list[int | None]:
    model = onnx.load(str(onnx_path), load_external_data=False)
    for graph_input in model.graph.input:
        if graph_input.name == INPUT_NAME:
            return [dim.dim_value if dim.HasField("dim_value") else None for dim in graph_input.type.tensor_type.shape.dim]
    raise DMPHNError(f"{onnx_path} has no input named {INPUT_NAME!r}; is it a DMPHN export?")


def _profile_shapes(
    dims: list[int | None], batch: int, height: int, width: int, max_batch: int | None
) -> dict[str, list[int]] | None:
    """min/opt/max input shapes for the ONNX input ``dims`` (None where the axis is dynamic)."""
    if len(dims) != 4 or dims[1] not in (3, None):
        raise DMPHNError(f"ONNX input {INPUT_NAME!r} has shape {dims}; expected (B, 3, H, W)")
    if dims[0] is not None and max_batch:
        raise DMPHNError(
            f"the ONNX file has a static batch of {dims[0]}; export it with --dynamic-batch for --max-batch {max_batch}"
        )
    for axis, want, what in ((0, batch, "batch"), (2, height, "height"), (3, width, "width")):
        if dims[axis] is not None and dims[axis] != want:
            raise DMPHNError(f"the ONNX file has static {what} {dims[axis]} but {want} was asked for")
    if all(dim is not None for dim in dims):
        return None
    max_batch = max_batch or batch
    low = [1 if dims[0] is None else dims[0], 3, height, width]
    opt = [batch if dims[0] is None else dims[0], 3, height, width]
    high = [max_batch if dims[0] is None else dims[0], 3, height, width]
    return {"min": low, "opt": opt, "max": high}


def _onnx_tensor_names(onnx_path: Path) -> set[str]:
    """Every tensor name the ONNX graph has; TensorRT tensors named otherwise are parser-internal."""
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    names = {t.name for t in [*graph.input, *graph.output, *graph.value_info]}
    names.update(init.name for init in graph.initializer)
    for node in graph.node:
        names.update(node.input)
        names.update(node.output)
    names.discard("")
    return names


def _layer_tensors(layer) -> tuple[list, list]:
    """(inputs, outputs) of a TensorRT layer; optional inputs left unset (None) are skipped."""
    inputs = [layer.get_input(i) for i in range(layer.num_inputs)]
    outputs = [layer.get_output(i) for i in range(layer.num_outputs)]
    return [t for t in inputs if t is not None], [t for t in outputs if t is not None]


def _pin_fp32(trt, network, tensors: Iterable[str], onnx_names: set[str]) -> list[str]:
    """Pin to fp32 every layer that reads or writes one of ``tensors`` (ONNX tensor names).

    Then widen along float tensors the parser made up (name not in ``onnx_names``): they join
    the layers of one ONNX node's expansion, which carry the same out-of-range values. The
    walk goes upstream from a layer to the writers of its made-up inputs and downstream to the
    readers of its made-up outputs, never turning round, so a constant shared with unrelated
    layers pins its writer but not its other readers. Layers without a float32 output
    (shape / index arithmetic) have no precision to pin.
    Returns the names of the pinned layers, in network order.
    """
    hot = set(tensors)
    layers = [network.get_layer(index) for index in range(network.num_layers)]
    io = [_layer_tensors(layer) for layer in layers]
    selected = {i for i, (ins, outs) in enumerate(io) if hot.intersection(t.name for t in [*ins, *outs])}
    readers: dict[str, set[int]] = {}
    writers: dict[str, set[int]] = {}
    for i, (ins, outs) in enumerate(io):
        for t in ins:
            readers.setdefault(t.name, set()).add(i)
        for t in outs:
            writers.setdefault(t.name, set()).add(i)

    def internal(t) -> bool:
        return t.name not in onnx_names and t.dtype == trt.float32

    def walk(upstream: bool) -> set[int]:
        pending, seen = list(selected), set(selected)
        while pending:
            ins, outs = io[pending.pop()]
            for t in filter(internal, ins if upstream else outs):
                for neighbour in (writers if upstream else readers).get(t.name, set()) - seen:
                    seen.add(neighbour)
                    pending.append(neighbour)
        return seen

    selected = walk(upstream=True) | walk(upstream=False)
    pinned = []
    for i in sorted(selected):
        layer, (_, outs) = layers[i], io[i]
        if not any(out.dtype == trt.float32 for out in outs):
            continue
        layer.precision = trt.float32
        for index in range(layer.num_outputs):
            out = layer.get_output(index)
            if out is not None and out.dtype == trt.float32:
                layer.set_output_type(index, trt.float32)
        pinned.append(layer.name)
    return pinned


def _gpu_info() -> dict[str, str | None]:
    """The GPU the engine is built on, as the sidecar records it."""
    gpu = torch.cuda.get_device_properties(torch.cuda.current_device())
    return {"name": gpu.name, "compute_capability": f"{gpu.major}.{gpu.minor}", "cuda": torch.version.cuda}


def build_engine(
    model: DMPHN,
    path: str | os.PathLike,
    *,
    batch: int,
    height: int,
    width: int,
    precision: str,
    onnx_path: str | os.PathLike | None = None,
    max_batch: int | None = None,
    workspace_gb: float | None = None,
    timing_cache: str | os.PathLike | None = None,
    sidecar: str | os.PathLike | None = None,
    fp16_guard: bool = True,
    precision_constraints: str = "obey",
) -> dict[str, Any]:
    """Build a serialized engine at ``path`` and its JSON sidecar (default ``<path>.json``).

    ``onnx_path``: reuse this ONNX (else one is exported into a temporary folder).
    ``max_batch``: dynamic batch with an optimisation profile 1..max_batch (opt = batch).
    ``workspace_gb``: cap on the builder's scratch memory (None: TensorRT's default, the GPU's memory).
    ``timing_cache``: read if it exists and matches its hash record, written back (atomically) after the build.
    ``precision_constraints``: "obey" or "prefer", how binding the overflow guard's fp32 pins are.
    Returns the build info; ``log_lines`` is what the CLI prints.
    """
    check_precision(precision, TensorRTRunner.precisions, "TensorRT precision")
    if max_batch is not None and max_batch < batch:
        raise DMPHNError(f"--max-batch ({max_batch}) must be at least --batch ({batch})")
    if workspace_gb is not None and workspace_gb <= 0:
        raise DMPHNError(f"workspace must be positive, got {workspace_gb} GiB")
    if precision_constraints not in PRECISION_CONSTRAINTS:
        raise DMPHNError(f"unknown precision constraints {precision_constraints!r}; use {' or '.join(PRECISION_CONSTRAINTS)}")
    model.geometry.check_size(height, width)
    trt = check_tensorrt_available()
    if precision == "fp16" and not hasattr(trt.BuilderFlag, "FP16"):
        raise RuntimeUnavailable(f"TensorRT {trt.__version__} has no weakly typed FP16 builds; use TensorRT 10.x")
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="dmphn_trt_") as workdir:
        if onnx_path is None:
            from .to_onnx import export_onnx

            onnx_file = Path(workdir) / "model.onnx"
            export_onnx(model, onnx_file, batch=batch, height=height, width=width, dynamic_batch=max_batch is not None)
        else:
            onnx_file = Path(onnx_path)
            if not onnx_file.is_file():
                raise DMPHNError(f"ONNX file not found: {onnx_file}")
        return _build(trt, model, path, onnx_file, batch=batch, height=height, width=width, precision=precision,
                      max_batch=max_batch, workspace_gb=workspace_gb, timing_cache=timing_cache,
                      sidecar=Path(sidecar) if sidecar else sidecar_path(path), fp16_guard=fp16_guard,
                      onnx_given=onnx_path is not None, precision_constraints=precision_constraints)


def _created(made, what: str, logger):
    """``made``, or a one-line error where the binding returned None (TensorRT's nullptr)."""
    if made is None:
        errors = [line for line in logger.lines if line.startswith(("[ERROR]", "[INTERNAL_ERROR]"))]
        raise DMPHNError(f"TensorRT could not create {what}: {errors[-1] if errors else 'it logged no reason'}")
    return made


def _new_builder(trt, logger):
    try:
        return _created(trt.Builder(logger), "a builder", logger)
    except TypeError as exc:  # pybind11 refuses a factory that returned nullptr with a TypeError
        raise DMPHNError(f"TensorRT could not create a builder (no usable GPU or driver?): {exc}") from None


def _build(trt, model, path, onnx_file, *, batch, height, width, precision, max_batch, workspace_gb, timing_cache,
           sidecar, fp16_guard, onnx_given, precision_constraints) -> dict[str, Any]:
    from .verify import natural_inputs

    begin = time.perf_counter()
    profile_shapes = _profile_shapes(_onnx_input_dims(onnx_file), batch, height, width, max_batch)

    overflow = {"nodes": [], "tensors": [], "checked": False}
    if precision == "fp16" and fp16_guard:
        inputs = [x for _, x in natural_inputs(batch, height, width)]
        overflow = {**fp16_overflow_report(onnx_file, inputs), "checked": True, "inputs": "camera-shake blurred photos"}

    logger = _collecting_logger(trt, trt.ILogger.Severity.WARNING)
    builder = _new_builder(trt, logger)
    # explicit batch is the only mode in TensorRT 10: no creation flags
    network = _created(builder.create_network(0), "a network definition", logger)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_file)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise DMPHNError(f"TensorRT could not parse {onnx_file}: {errors[0] if errors else 'unknown error'}")

    config = _created(builder.create_builder_config(), "a builder config", logger)
    if workspace_gb is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * 2**30))
    if precision == "fp32":
        config.clear_flag(trt.BuilderFlag.TF32)  # on by default in TensorRT
    elif precision == "tf32":
        config.set_flag(trt.BuilderFlag.TF32)
    else:
        config.set_flag(trt.BuilderFlag.FP16)
    pinned = _pin_fp32(trt, network, overflow["tensors"], _onnx_tensor_names(onnx_file)) if overflow["tensors"] else []
    if pinned:
        config.set_flag(getattr(trt.BuilderFlag, PRECISION_CONSTRAINTS[precision_constraints]))
    if profile_shapes:
        profile = _created(builder.create_optimization_profile(), "an optimization profile", logger)
        profile.set_shape(INPUT_NAME, profile_shapes["min"], profile_shapes["opt"], profile_shapes["max"])
        if config.add_optimization_profile(profile) < 0:  # -1: TensorRT found the profile invalid
            raise DMPHNError(f"TensorRT refused the optimization profile {json.dumps(profile_shapes)}")

    cache_file = Path(timing_cache) if timing_cache else None
    # our reference to the cache is kept until it is serialized below, after the build
    timing_cache_object, cache_hit, cache_note = attach_timing_cache(trt, config, cache_file)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        errors = [line for line in logger.lines if line.startswith(("[ERROR]", "[INTERNAL_ERROR]"))]
        hint = ("; a layer pinned to fp32 may have no fp32 implementation: --precision-constraints prefer lets "
                "TensorRT break such a pin" if pinned and precision_constraints == "obey" else "")
        raise DMPHNError(f"TensorRT engine build failed: {errors[-1] if errors else 'see the TensorRT log'}{hint}")
    engine_bytes = bytes(serialized)
    gpu = _gpu_info()
    if cache_file:  # serialized from the object attached above, while it and the config are both alive
        save_timing_cache(timing_cache_object, cache_file, {"tensorrt": trt.__version__, "gpu": gpu})
    write_bytes_atomic(path, engine_bytes)
    seconds = time.perf_counter() - begin

    tensorrt_info = {
        "version": trt.__version__,
        "precision": precision,
        "profile": profile_shapes,
        "workspace_gib": workspace_gb,  # None: TensorRT's default (the GPU's memory), no cap
        "fp16_overflow_guard": {k: overflow.get(k) for k in ("checked", "inputs", "threshold", "nodes", "largest_abs")},
        "fp32_pinned_layers": pinned,
        "precision_constraints": precision_constraints if pinned else None,
        "timing_cache": str(cache_file) if cache_file else None,
        "timing_cache_reused": cache_hit,
        "timing_cache_note": cache_note,
        "build_seconds": round(seconds, 2),
        "onnx": str(onnx_file) if onnx_given else "exported for this build",
        "io": {"input": INPUT_NAME, "output": OUTPUT_NAME, "dtype": "float32"},
    }
    meta = artifact_metadata(
        model.config, batch=batch, height=height, width=width, precision=precision,
        dynamic_batch=bool(profile_shapes and profile_shapes["min"][0] != profile_shapes["max"][0]),
        tensorrt=tensorrt_info,
        gpu=gpu,
    )
    write_text_atomic(sidecar, json.dumps(meta, indent=2, sort_keys=True))

    info = {**tensorrt_info, "sidecar": str(sidecar), "engine_bytes": len(engine_bytes), "gpu": meta["gpu"],
            "build_log": logger.lines}
    shapes = profile_shapes or {"static": [batch, 3, height, width]}
    info["log_lines"] = [
        (f"tensorrt {trt.__version__}: {precision} engine on {gpu['name']} in {seconds:.1f}s, "
         f"{len(engine_bytes) / 2**20:.1f} MiB; shapes {json.dumps(shapes)}"),
        "  fp16 overflow guard: " + (
            f"{len(overflow['nodes'])} nodes past {overflow['threshold']:g} (largest |x| "
            f"{overflow['largest_abs']:.3g}); {len(pinned)} layers pinned to fp32"
            + (f" ({precision_constraints})" if pinned else "")
            if overflow["checked"] else "not needed" if precision != "fp16" else "off"),
        f"  timing cache: {cache_file} ({'reused' if cache_hit else 'new'})" if cache_file else "  timing cache: none",
        *([f"  {cache_note}"] if cache_note else []),
        f"  builder log: {len(logger.lines)} warnings/errors" + (f"; last: {logger.lines[-1]}" if logger.lines else ""),
        "  sidecar: JSON (TensorRT version, GPU, precision, shapes, metadata) written beside the engine",
    ]
    return info


def _build_for_exporter(model: DMPHN, path: Path, *, batch: int, height: int, width: int, device: str, precision: str,
                        source: str | os.PathLike | None = None, **options: Any) -> dict[str, Any]:
    options.setdefault("onnx_path", source)
    return build_engine(model, path, batch=batch, height=height, width=width, precision=precision, **options)


EXPORTER = Exporter(format="tensorrt", runtime="trt", suffix=".engine", precisions=TensorRTRunner.precisions,
                    devices=("cuda",), build=_build_for_exporter, source_format="onnx", cache_options=cache_options)
