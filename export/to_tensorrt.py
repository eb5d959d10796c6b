"""ONNX -> TensorRT engine with the TensorRT 10 Python API, plus a JSON sidecar.

Precisions: ``fp32`` (TF32 switched off: TensorRT enables it by default), ``tf32`` and
``fp16``. A dynamic batch gets one optimisation profile ``1 .. max_batch`` (opt = batch).

FP16 overflow guard: before an fp16 build the ONNX graph runs in ONNX Runtime (fp32, CPU)
on the verification inputs with the largest |value| of every intermediate tensor exposed
as an extra output. Nodes whose outputs go past ``FP16_SAFE_MAX``, and the nodes that read
those outputs, are pinned to fp32 in TensorRT (layer precision, output types, and
``OBEY_PRECISION_CONSTRAINTS``), so the engine computes instead of returning inf/NaN.

Everything that touches TensorRT needs the ``tensorrt`` package (the builder, not the
lean runtime) and a CUDA GPU; :func:`check_tensorrt_available` says which one is missing.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from dmphn_core.artifact import INPUT_NAME, OUTPUT_NAME, artifact_metadata, sidecar_path
from dmphn_core.errors import DMPHNError, RuntimeUnavailable
from dmphn_core.fileio import write_bytes_atomic, write_text_atomic
from dmphn_core.model import DMPHN
from dmphn_core.precision import check_precision
from runtimes.tensorrt import TensorRTRunner

from .exporter import Exporter

FP16_MAX = 65504.0
#: Pin a node to fp32 once |x| passes half the fp16 range: deployment inputs differ from
#: the calibration inputs, so a node that reaches 40000 here may overflow on a real photo.
FP16_SAFE_MAX = 2.0**15
_ABSMAX_PREFIX = "dmphn_absmax/"


# -- availability ------------------------------------------------------------------------
def check_tensorrt_available():
    """Return the ``tensorrt`` module, or raise RuntimeUnavailable naming what is missing."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise RuntimeUnavailable(
            f"TensorRT engine builds need the `tensorrt` Python package (TensorRT 10 builder), which is not "
            f"installed here ({exc}); install it with `pip install tensorrt` on a CUDA host"
        ) from None
    if not hasattr(trt, "Builder"):
        raise RuntimeUnavailable(
            "the installed `tensorrt` package has no Builder (a lean/dispatch runtime only); "
            "engine builds need the full TensorRT 10 package"
        )
    if not torch.cuda.is_available():
        raise RuntimeUnavailable("TensorRT engine builds need a CUDA GPU; torch.cuda.is_available() is False here")
    return trt


# -- FP16 overflow guard (ONNX Runtime, CPU) -----------------------------------------------
def _with_absmax_outputs(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, str]]:
    """Copy of ``model`` with ``max |t|`` of every float node output added as a scalar output.

    Reducing inside the graph keeps memory at one inference: exposing the full
    intermediate tensors would hold every activation of the network at once.
    Returns the model and ``{scalar output name: tensor name}``.
    """
    inferred = onnx.shape_inference.infer_shapes(model)
    elem_types = {
        info.name: info.type.tensor_type.elem_type
        for info in [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]
    }
    probed = onnx.ModelProto()
    probed.CopyFrom(model)
    graph = probed.graph
    probes: dict[str, str] = {}
    for node in model.graph.node:
        for tensor in node.output:
            if not tensor or elem_types.get(tensor) != onnx.TensorProto.FLOAT:
                continue
            abs_name, max_name = f"{_ABSMAX_PREFIX}abs/{tensor}", f"{_ABSMAX_PREFIX}{tensor}"
            graph.node.append(onnx.helper.make_node("Abs", [tensor], [abs_name], name=abs_name))
            # no axes: reduce over every axis to one scalar
            graph.node.append(onnx.helper.make_node("ReduceMax", [abs_name], [max_name], name=max_name, keepdims=0))
            graph.output.append(onnx.helper.make_tensor_value_info(max_name, onnx.TensorProto.FLOAT, []))
            probes[max_name] = tensor
    return probed, probes


def activation_ranges(onnx_path: str | os.PathLike, inputs: Iterable[np.ndarray]) -> dict[str, float]:
    """``{tensor name: max |value|}`` over ``inputs`` for every float tensor a node produces."""
    import onnxruntime as ort

    model = onnx.load(str(onnx_path))
    probed, probes = _with_absmax_outputs(model)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(probed.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = list(probes)
    ranges = dict.fromkeys(probes.values(), 0.0)
    for x in inputs:
        for name, value in zip(names, session.run(names, {INPUT_NAME: np.ascontiguousarray(x, dtype=np.float32)})):
            value = float(value)
            tensor = probes[name]
            ranges[tensor] = value if np.isnan(value) else max(ranges[tensor], value)
    return ranges


def fp16_overflow_report(
    onnx_path: str | os.PathLike, inputs: Iterable[np.ndarray], threshold: float = FP16_SAFE_MAX
) -> dict[str, Any]:
    """Which nodes must stay fp32: those whose output passes ``threshold`` and those reading it.

    A consumer of an out-of-range tensor counts too: in fp16 its *input* would already be inf.
    Returns ``{"nodes": [...], "tensors": [...], "max_abs": {tensor: value}}``.
    """
    ranges = activation_ranges(onnx_path, inputs)
    hot = {tensor for tensor, value in ranges.items() if not value <= threshold}  # NaN counts as hot
    model = onnx.load(str(onnx_path), load_external_data=False)
    nodes = [
        _node_name(index, node)
        for index, node in enumerate(model.graph.node)
        if hot.intersection(node.output) or hot.intersection(node.input)
    ]
    return {
        "threshold": threshold,
        "nodes": nodes,
        "tensors": sorted(hot),
        "max_abs": {tensor: ranges[tensor] for tensor in sorted(hot)},
        "largest_abs": max(ranges.values(), default=0.0),
    }


def find_fp16_overflow_nodes(
    onnx_path: str | os.PathLike, inputs: Iterable[np.ndarray], threshold: float = FP16_SAFE_MAX
) -> list[str]:
    """Names of the ONNX nodes that must run in fp32 (see :func:`fp16_overflow_report`)."""
    return fp16_overflow_report(onnx_path, inputs, threshold)["nodes"]


def _node_name(index: int, node: onnx.NodeProto) -> str:
    return node.name or f"{node.op_type}_{index}"


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


def _pin_fp32(trt, network, nodes: list[str], tensors: list[str]) -> list[str]:
    """Force the layers of ``nodes`` (or producing ``tensors``) to compute and output fp32."""
    names, produced = set(nodes), set(tensors)
    pinned = []
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        outputs = [layer.get_output(i) for i in range(layer.num_outputs)]
        if layer.name not in names and not produced.intersection(out.name for out in outputs):
            continue
        if not any(out.dtype == trt.float32 for out in outputs):
            continue  # shape/index layers: no float precision to pin
        layer.precision = trt.float32
        for i, out in enumerate(outputs):
            if out.dtype == trt.float32:
                layer.set_output_type(i, trt.float32)
        pinned.append(layer.name)
    return pinned


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
    workspace_gb: float = 4.0,
    timing_cache: str | os.PathLike | None = None,
    sidecar: str | os.PathLike | None = None,
    fp16_guard: bool = True,
) -> dict[str, Any]:
    """Build a serialized engine at ``path`` and its JSON sidecar (default ``<path>.json``).

    ``onnx_path``: reuse this ONNX (else one is exported into a temporary folder).
    ``max_batch``: dynamic batch with an optimisation profile 1..max_batch (opt = batch).
    ``timing_cache``: read if it exists, written back (atomically) after the build.
    Returns the build info; ``log_lines`` is what the CLI prints.
    """
    check_precision(precision, TensorRTRunner.precisions, "TensorRT precision")
    if max_batch is not None and max_batch < batch:
        raise DMPHNError(f"--max-batch ({max_batch}) must be at least --batch ({batch})")
    if workspace_gb <= 0:
        raise DMPHNError(f"workspace must be positive, got {workspace_gb} GiB")
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
                      onnx_given=onnx_path is not None)


def _build(trt, model, path, onnx_file, *, batch, height, width, precision, max_batch, workspace_gb, timing_cache,
           sidecar, fp16_guard, onnx_given) -> dict[str, Any]:
    from .verify import verification_inputs

    begin = time.perf_counter()
    profile_shapes = _profile_shapes(_onnx_input_dims(onnx_file), batch, height, width, max_batch)

    overflow = {"nodes": [], "tensors": [], "checked": False}
    if precision == "fp16" and fp16_guard:
        inputs = [x for _, x in verification_inputs(batch, height, width)]
        overflow = {**fp16_overflow_report(onnx_file, inputs), "checked": True}

    logger = _collecting_logger(trt, trt.ILogger.Severity.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_file)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise DMPHNError(f"TensorRT could not parse {onnx_file}: {errors[0] if errors else 'unknown error'}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * 2**30))
    if precision == "fp32":
        config.clear_flag(trt.BuilderFlag.TF32)  # on by default in TensorRT
    elif precision == "tf32":
        config.set_flag(trt.BuilderFlag.TF32)
    else:
        config.set_flag(trt.BuilderFlag.FP16)
    pinned = _pin_fp32(trt, network, overflow["nodes"], overflow["tensors"]) if overflow["nodes"] else []
    if pinned:
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    if profile_shapes:
        profile = builder.create_optimization_profile()
        profile.set_shape(INPUT_NAME, profile_shapes["min"], profile_shapes["opt"], profile_shapes["max"])
        config.add_optimization_profile(profile)

    cache_file = Path(timing_cache) if timing_cache else None
    cache_hit = bool(cache_file and cache_file.is_file())
    if cache_file:
        cache = config.create_timing_cache(cache_file.read_bytes() if cache_hit else b"")
        config.set_timing_cache(cache, ignore_mismatch=False)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        errors = [line for line in logger.lines if line.startswith(("[ERROR]", "[INTERNAL_ERROR]"))]
        raise DMPHNError(f"TensorRT engine build failed: {errors[-1] if errors else 'see the TensorRT log'}")
    engine_bytes = bytes(serialized)
    write_bytes_atomic(path, engine_bytes)
    if cache_file:
        write_bytes_atomic(cache_file, bytes(config.get_timing_cache().serialize()))
    seconds = time.perf_counter() - begin

    gpu = torch.cuda.get_device_properties(torch.cuda.current_device())
    tensorrt_info = {
        "version": trt.__version__,
        "precision": precision,
        "profile": profile_shapes,
        "workspace_gib": workspace_gb,
        "fp16_overflow_guard": {k: overflow.get(k) for k in ("checked", "threshold", "nodes", "largest_abs")},
        "fp32_pinned_layers": pinned,
        "timing_cache": str(cache_file) if cache_file else None,
        "timing_cache_reused": cache_hit,
        "build_seconds": round(seconds, 2),
        "onnx": str(onnx_file) if onnx_given else "exported for this build",
        "io": {"input": INPUT_NAME, "output": OUTPUT_NAME, "dtype": "float32"},
    }
    meta = artifact_metadata(
        model.config, batch=batch, height=height, width=width, precision=precision,
        dynamic_batch=bool(profile_shapes and profile_shapes["min"][0] != profile_shapes["max"][0]),
        tensorrt=tensorrt_info,
        gpu={"name": gpu.name, "compute_capability": f"{gpu.major}.{gpu.minor}", "cuda": torch.version.cuda},
    )
    write_text_atomic(sidecar, json.dumps(meta, indent=2, sort_keys=True))

    info = {**tensorrt_info, "sidecar": str(sidecar), "engine_bytes": len(engine_bytes), "gpu": meta["gpu"],
            "build_log": logger.lines}
    shapes = profile_shapes or {"static": [batch, 3, height, width]}
    info["log_lines"] = [
        (f"tensorrt {trt.__version__}: {precision} engine on {gpu.name} in {seconds:.1f}s, "
         f"{len(engine_bytes) / 2**20:.1f} MiB; shapes {json.dumps(shapes)}"),
        "  fp16 overflow guard: " + (
            f"{len(overflow['nodes'])} nodes past {overflow['threshold']:g} (largest |x| "
            f"{overflow['largest_abs']:.3g}); {len(pinned)} layers pinned to fp32"
            if overflow["checked"] else "not needed" if precision != "fp16" else "off"),
        f"  timing cache: {cache_file} ({'reused' if cache_hit else 'new'})" if cache_file else "  timing cache: none",
        f"  builder log: {len(logger.lines)} warnings/errors" + (f"; last: {logger.lines[-1]}" if logger.lines else ""),
        "  sidecar: JSON (TensorRT version, GPU, precision, shapes, metadata) written beside the engine",
    ]
    return info


def _build(model: DMPHN, path: Path, *, batch: int, height: int, width: int, device: str, precision: str,
           source: str | os.PathLike | None = None, **options: Any) -> dict[str, Any]:
    options.setdefault("onnx_path", source)
    return build_engine(model, path, batch=batch, height=height, width=width, precision=precision, **options)


EXPORTER = Exporter(format="tensorrt", runtime="trt", suffix=".engine", precisions=TensorRTRunner.precisions,
                    devices=("cuda",), build=_build, companions=lambda path: [sidecar_path(path)], source_format="onnx")
