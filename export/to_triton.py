"""Triton Inference Server model repository: ``<repo>/<name>/{config.pbtxt, 1/model.onnx|model.plan|model.py}``.

The config is built as Triton's own ``ModelConfig`` protobuf message (the schema shipped in
``tritonclient``) and written in protobuf text format. ``max_batch_size > 0``, so Triton
owns the batch axis: the dims in the config are ``[3, H, W]`` and the model file has a
dynamic batch axis (ONNX exported with a dynamic batch; TensorRT engine with a profile
``1 .. max_batch``). Dynamic batching groups requests up to ``max_batch``.

Backends:

* ``python``: Triton's Python backend runs ``model.py`` (from ``export/triton_assets``), which
  runs the toolkit's own runner on a static-H/W artifact beside it (ONNX Runtime on
  ``model.onnx``, fp32, CPU instances). This is the flavour the ``tritonserver`` bundled in
  ``nvidia-pytriton`` serves (it has no other backend): ``dmphn-serve REPO``. The runner is
  picked by the ``runtime`` parameter in the config (:data:`PYTHON_RUNTIMES`): the hook for
  another runner (OpenVINO) is one entry there.
* ``onnxruntime`` (``onnx``): platform ``onnxruntime_onnx``; serves the fp32 graph verified
  here, on CPU or GPU instances (``precision`` applies to ``tensorrt`` only).
* ``tensorrt`` (``trt``): platform ``tensorrt_plan``; the engine is built here and must be
  built with the TensorRT version of the Triton container that serves it, on the same GPU model.

Frames have the fixed size the config states (dims ``[3, H, W]``); a client with larger
images tiles them to that size (``runtimes.triton.TritonRunner`` reports the fixed H/W, so
:class:`dmphn_core.inference.Deblurrer` tiles as for any static-shape artifact).

Serve and query (Triton's container; pick the release whose TensorRT matches a plan)::

    docker run --gpus all --rm -p 8000:8000 -p 8001:8001 -p 8002:8002 \\
        -v "$PWD/model_repository:/models" nvcr.io/nvidia/tritonserver:<yy.mm>-py3 \\
        tritonserver --model-repository=/models
    # CPU-only host: drop --gpus all and export with --device cpu --backend onnx
    curl -s localhost:8000/v2/health/ready -o /dev/null -w '%{http_code}\\n'   # 200 when ready
    curl -s localhost:8000/v2/models/dmphn/config                            # the loaded config

    import numpy as np, tritonclient.grpc as grpcclient
    client = grpcclient.InferenceServerClient("localhost:8001")
    x = np.random.rand(1, 3, 720, 1280).astype(np.float32)       # RGB in [0, 1], NCHW
    request = grpcclient.InferInput("blurred", list(x.shape), "FP32")
    request.set_data_from_numpy(x)
    y = client.infer("dmphn", [request]).as_numpy("deblurred")   # (1, 3, 720, 1280)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from dmphn_core.artifact import INPUT_NAME, OUTPUT_NAME
from dmphn_core.errors import DMPHNError, RuntimeUnavailable
from dmphn_core.model import DMPHN

#: backend -> (platform, model file); the python backend's model file is its runner's artifact.
BACKENDS = {
    "python": ("", "model.onnx"),
    "onnxruntime": ("onnxruntime_onnx", "model.onnx"),
    "tensorrt": ("tensorrt_plan", "model.plan"),
}
#: Earlier names of the backends, still accepted.
BACKEND_ALIASES = {"onnx": "onnxruntime", "trt": "tensorrt"}
#: Runners the python backend can run: runtime key -> artifact file in the version folder.
#: OpenVINO hook: add ``"openvino": "model.xml"`` and its export in ``_write_model_file``.
#: ``et``: a static batch-1 ExecuTorch program; model.py runs a Triton batch through it image by image.
PYTHON_RUNTIMES = {"ort": "model.onnx", "et": "model.pte"}
PYTHON_MODEL = Path(__file__).with_name("triton_assets") / "model.py"
KINDS = {"gpu": "KIND_GPU", "cpu": "KIND_CPU"}
VERSION = "1"
#: How long Triton may hold a request to form a bigger batch.
MAX_QUEUE_DELAY_US = 100
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def model_config_pb2():
    """Triton's model-config protobuf module (from ``tritonclient[grpc]``)."""
    try:
        from tritonclient.grpc import model_config_pb2 as pb2
    except ImportError as exc:
        raise RuntimeUnavailable(
            f"writing a Triton config needs tritonclient[grpc] (pip install 'tritonclient[grpc]'): {exc}"
        ) from None
    return pb2


def preferred_batch_sizes(max_batch: int) -> list[int]:
    """Powers of two from 2 up to ``max_batch``, and ``max_batch`` itself."""
    sizes = [2**k for k in range(1, max_batch.bit_length()) if 2**k < max_batch]
    return sizes + [max_batch] if max_batch > 1 else []


def canonical_backend(backend: str) -> str:
    """``onnx`` -> ``onnxruntime``, ``trt`` -> ``tensorrt``; other names unchanged."""
    return BACKEND_ALIASES.get(backend, backend)


def triton_config(
    *, model_name: str, backend: str, height: int, width: int, max_batch: int, instances: int, device: str,
    parameters: dict[str, str] | None = None,
):
    """The ``ModelConfig`` message for a DMPHN model (batch axis implicit: dims are [3, H, W])."""
    pb2 = model_config_pb2()
    backend = canonical_backend(backend)
    config = pb2.ModelConfig(name=model_name, max_batch_size=max_batch)
    if backend == "python":
        config.backend = "python"
    else:
        config.platform = BACKENDS[backend][0]
    for key, value in (parameters or {}).items():
        config.parameters[key].string_value = value
    for tensors, name in ((config.input, INPUT_NAME), (config.output, OUTPUT_NAME)):
        tensors.add(name=name, data_type=pb2.TYPE_FP32, dims=[3, height, width])
    config.dynamic_batching.preferred_batch_size.extend(preferred_batch_sizes(max_batch))
    config.dynamic_batching.max_queue_delay_microseconds = MAX_QUEUE_DELAY_US
    config.instance_group.add(kind=getattr(pb2.ModelInstanceGroup, KINDS[device]), count=instances)
    return config


def _check_options(model: DMPHN, model_name: str, backend: str, height: int, width: int, max_batch: int,
                   instances: int, device: str, precision: str, runtime: str = "ort", threads: int = 0) -> None:
    if backend not in BACKENDS:
        raise DMPHNError(f"unknown Triton backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if backend == "python":
        if device != "cpu":
            raise DMPHNError("the python backend runs its runner on CPU instances; use --device cpu")
        if runtime not in PYTHON_RUNTIMES:
            raise DMPHNError(f"the python backend cannot run {runtime!r}; use one of {', '.join(PYTHON_RUNTIMES)}")
        if precision != "fp32":
            raise DMPHNError(f"the python backend serves the fp32 graph on CPU; got --precision {precision}")
        if threads < 0:
            raise DMPHNError(f"--threads must be 0 (runtime default) or more, got {threads}")
    if device not in KINDS:
        raise DMPHNError(f"unknown instance kind {device!r}; use cpu or gpu")
    if not _MODEL_NAME.match(model_name):
        raise DMPHNError(f"model name {model_name!r} must be a plain folder name (letters, digits, _ . -)")
    if max_batch < 1:
        raise DMPHNError(f"--max-batch must be at least 1, got {max_batch}")
    if instances < 1:
        raise DMPHNError(f"--instances must be at least 1, got {instances}")
    model.geometry.check_size(height, width)
    if backend == "tensorrt":
        if device != "gpu":
            raise DMPHNError("a TensorRT plan runs on GPU instances only; use --device gpu or --backend onnx")
        if precision not in ("fp32", "tf32", "fp16"):
            raise DMPHNError(f"unknown TensorRT precision {precision!r}; use fp32, tf32 or fp16")
        from .to_tensorrt import check_tensorrt_available

        check_tensorrt_available()  # before anything is written


def write_triton_repository(
    model: DMPHN,
    output: str | os.PathLike,
    *,
    model_name: str = "dmphn",
    backend: str = "onnx",
    height: int,
    width: int,
    max_batch: int = 8,
    instances: int = 1,
    device: str | None = None,
    precision: str | None = None,
    runtime: str = "ort",
    threads: int = 0,
) -> list[str]:
    """Write (or replace) ``<output>/<model_name>``; other models in ``output`` are left alone.

    ``device`` defaults to ``cpu`` for the python backend and ``gpu`` otherwise; ``precision``
    to ``fp16`` for tensorrt and ``fp32`` otherwise. ``runtime`` and ``threads`` (0: the
    runtime's default) apply to the python backend. The model folder is assembled and
    verified in a hidden temporary folder inside ``output`` and swapped in only when
    complete. Returns log lines for the CLI.
    """
    backend = canonical_backend(backend)
    device = device or ("cpu" if backend == "python" else "gpu")
    precision = precision or ("fp16" if backend == "tensorrt" else "fp32")
    _check_options(model, model_name, backend, height, width, max_batch, instances, device, precision, runtime,
                   threads)
    parameters = None
    if backend == "python":
        parameters = {"runtime": runtime, "artifact": PYTHON_RUNTIMES[runtime], "precision": precision,
                      "threads": str(threads), "dmphn_config": json.dumps(model.config.to_dict(), sort_keys=True)}
    config = triton_config(model_name=model_name, backend=backend, height=height, width=width, max_batch=max_batch,
                           instances=instances, device=device, parameters=parameters)
    from google.protobuf import text_format

    output = Path(output)
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DMPHNError(f"cannot create model repository {output}: {exc.strerror or exc}") from None
    if not os.access(output, os.W_OK):
        raise DMPHNError(f"cannot write model repository {output}: folder is not writable")

    lines: list[str] = []
    staging = Path(tempfile.mkdtemp(prefix=f".{model_name}.staging-", dir=output))
    try:
        version_dir = staging / VERSION
        version_dir.mkdir()
        artifact = version_dir / (PYTHON_RUNTIMES[runtime] if backend == "python" else BACKENDS[backend][1])
        lines += _write_model_file(model, artifact, backend=backend, height=height, width=width, max_batch=max_batch,
                                   precision=precision, runtime=runtime)
        if backend == "python":
            shutil.copyfile(PYTHON_MODEL, version_dir / "model.py")
        (staging / "config.pbtxt").write_text(text_format.MessageToString(config))
        _swap_into_place(staging, output / model_name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    target = output / model_name
    lines.append(f"wrote {target / 'config.pbtxt'} ({config.platform or 'python backend: ' + runtime}, "
                 f"max_batch_size {max_batch}, {instances}x {KINDS[device]}, dims [3, {height}, {width}])")
    lines.append(f"wrote {target / artifact.relative_to(staging)}"
                 + (" (fp32 graph; --precision applies to --backend tensorrt)"
                    if backend == "onnxruntime" and precision != "fp32" else ""))
    if backend == "python":
        lines.append(f"wrote {target / VERSION / 'model.py'}")
        lines.append(f"serve: dmphn-serve {output}")
    else:
        lines.append(f"serve: tritonserver --model-repository={output.resolve()}")
    return lines


def _write_model_file(model: DMPHN, artifact: Path, *, backend: str, height: int, width: int, max_batch: int,
                      precision: str, runtime: str = "ort") -> list[str]:
    """Export into ``artifact`` through :func:`export.exporter.export_verified`; raise if verification fails."""
    from .exporter import ExportFailed, export_verified

    lines: list[str] = []
    if backend == "python" and runtime == "et":
        fmt, device, batch, artifact_precision, options = "executorch", "cpu", 1, "fp32", {}
        shapes = [(1, height, width)]
    elif backend in ("onnxruntime", "python"):
        # dynamic batch, verified on the CPU: batch 2 proves the axis
        fmt, device, batch, artifact_precision, options = "onnx", "cpu", 1, "fp32", {"dynamic_batch": True}
        shapes = [(1, height, width)] + ([(2, height, width)] if max_batch > 1 else [])
    else:
        fmt, device, batch, artifact_precision, options = "tensorrt", "cuda", max_batch, precision, {"max_batch": max_batch}
        shapes = [(1, height, width)] + ([(max_batch, height, width)] if max_batch > 1 else [])
    try:
        export_verified(fmt, model, artifact, batch=batch, height=height, width=width, device=device,
                        precision=artifact_precision, verify_shapes=shapes, log=lines.append, **options)
    except ExportFailed as exc:
        raise DMPHNError(f"Triton {fmt} model failed verification ({exc}); repository unchanged") from None
    return lines


def _swap_into_place(staging: Path, target: Path) -> None:
    """Replace ``target`` by ``staging`` with renames; the old folder is removed only after."""
    if target.exists() and not target.is_dir():
        raise DMPHNError(f"{target} exists and is not a folder")
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        old.rmdir()
        os.replace(target, old)
    try:
        os.replace(staging, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
