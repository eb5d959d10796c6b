"""The artifact contract: what every exported model file is and says about itself.

One home for the facts that exporters write and runners, ``dmphn-deblur`` and the C++ program
read: the input/output tensor names, the metadata blob and where each format keeps it, the
file suffixes of each format, and which files one artifact consists of (:func:`artifact_files`:
the OpenVINO ``.bin``, the TensorRT sidecar, ONNX external data). It sits at the bottom layer so
that ``runtimes`` and ``export`` both ask it instead of one another.

Where each format keeps the metadata (:func:`read_metadata` reads all of them):

* ONNX: ``metadata_props[METADATA_KEY]``
* TorchScript: the extra file ``METADATA_KEY`` of the archive (``<archive>/extra/dmphn.json``)
* AOTInductor ``.pt2``: package metadata under ``METADATA_KEY`` (``aoti_load_package().get_metadata()``)
* TensorRT engine: a JSON sidecar beside the engine (:func:`sidecar_path`)
* OpenVINO IR: ``rt_info`` of the ``.xml`` under :data:`OPENVINO_RT_INFO_KEY`
* ExecuTorch ``.pte``: a constant method :data:`EXECUTORCH_METADATA_METHOD` that returns the blob
  (read through ExecuTorch's pybindings, loading that method only)
* checkpoint: not an artifact; :mod:`dmphn_core.checkpoint` reads it
"""

from __future__ import annotations

import json
import os
import platform
import zipfile
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .errors import DMPHNError, exception_line
from .model import DMPHNConfig

INPUT_NAME = "blurred"
OUTPUT_NAME = "deblurred"
#: Key of the JSON blob in ONNX metadata_props, the TorchScript extra file and AOTI package metadata.
METADATA_KEY = "dmphn.json"
#: rt_info path of the same JSON blob in an OpenVINO IR.
OPENVINO_RT_INFO_KEY = ("dmphn", "json")
#: Name of the constant method of an ExecuTorch program that returns the same JSON blob.
EXECUTORCH_METADATA_METHOD = "dmphn_json"

#: Artifact format of each file suffix. ``checkpoint`` is the toolkit's own training checkpoint.
FORMAT_SUFFIXES: dict[str, str] = {
    ".pt": "checkpoint",
    ".pth": "checkpoint",
    ".ts": "torchscript",
    ".torchscript": "torchscript",
    ".onnx": "onnx",
    ".pt2": "aoti",
    ".engine": "tensorrt",
    ".plan": "tensorrt",
    ".xml": "openvino",
    ".pte": "executorch",
}
FORMATS = tuple(dict.fromkeys(FORMAT_SUFFIXES.values()))


def artifact_metadata(
    config: DMPHNConfig,
    *,
    batch: int,
    height: int,
    width: int,
    precision: str = "fp32",
    dynamic_batch: bool = False,
    dynamic_hw: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """The metadata dict; ``extra`` adds runtime-specific fields (e.g. ``tensorrt`` version)."""
    geometry = config.geometry
    return {
        "model": config.name,
        "config": config.to_dict(),
        "size_block_hw": list(geometry.size_block),
        "patches_per_level": [geometry.grid(level).count for level in range(1, geometry.num_levels + 1)],
        "input": {
            "name": INPUT_NAME,
            "shape": ["batch" if dynamic_batch else batch, 3, "height" if dynamic_hw else height, "width" if dynamic_hw else width],
            "layout": "NCHW",
            "color": "RGB",
            "dtype": "float32",
            "range": [0.0, 1.0],
            "normalisation": "none: feed RGB in [0, 1]; the model shifts by -0.5 inside and back at the output",
        },
        "output": {"name": OUTPUT_NAME, "layout": "NCHW", "range": [0.0, 1.0], "clamped": False},
        "export_shape": [batch, 3, height, width],
        "precision": precision,
        "exporter": {
            "dmphn_deploy": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        **extra,
    }


def metadata_json(metadata: dict[str, Any]) -> str:
    return json.dumps(metadata, sort_keys=True)


def sidecar_path(engine_path: str | os.PathLike) -> Path:
    """Where the JSON sidecar of a TensorRT engine lives: ``model.engine`` -> ``model.engine.json``."""
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".json")


def _onnx_external_data(path: Path) -> list[Path]:
    """The external-data files an ONNX model names (none for a single-file model)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - an unreadable model has no companions we can name; loading it fails later
        return []
    locations = []
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            locations += [entry.value for entry in tensor.external_data if entry.key == "location"]
    folder = path.parent.resolve()
    # only files beside the model count: a location that leaves its folder is not ours to hash or delete
    return [path.parent / location for location in dict.fromkeys(locations)
            if (path.parent / location).resolve().is_relative_to(folder)]


def companion_paths(path: str | os.PathLike, fmt: str | None = None) -> list[Path]:
    """The files besides ``path`` that are part of the artifact (the artifact contract's one list).

    OpenVINO: the ``.bin`` weights; TensorRT: the JSON sidecar; ONNX: the external-data files the
    model names (read from ``path`` when it exists); TorchScript, AOTInductor, checkpoint: none.
    """
    path = Path(path)
    fmt = fmt or detect_format(path)
    if fmt == "openvino":
        return [path.with_suffix(".bin")]
    if fmt == "tensorrt":
        return [sidecar_path(path)]
    if fmt == "onnx" and path.is_file():
        return _onnx_external_data(path)
    return []


def artifact_files(path: str | os.PathLike, fmt: str | None = None) -> list[Path]:
    """Every file the artifact at ``path`` consists of: ``path`` first, then its companions."""
    return [Path(path), *companion_paths(path, fmt)]


def is_torchscript_archive(path: str | os.PathLike) -> bool:
    """True for a ``torch.jit.save`` file (a zip with ``code/`` and ``constants.pkl``), whatever its suffix."""
    try:
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except OSError:
        return False
    return any("/code/" in name or name.endswith("/constants.pkl") for name in names)


def detect_format(path: str | os.PathLike) -> str:
    """The artifact format of a model file, from its suffix; a ``.pt`` TorchScript archive is ``torchscript``."""
    path = Path(path)
    fmt = FORMAT_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise DMPHNError(
            f"cannot tell what kind of model {path} is from its suffix {path.suffix!r}; use one of "
            f"{', '.join(FORMAT_SUFFIXES)} or name the runtime (--runtime)"
        )
    if fmt == "checkpoint" and is_torchscript_archive(path):
        return "torchscript"
    return fmt


def parse_metadata(raw: str | bytes | None, source: str | os.PathLike) -> dict[str, Any] | None:
    """The metadata dict of a JSON blob (None when there is none); a corrupt blob is an error."""
    if raw is None or raw in ("", b""):
        return None
    try:
        metadata = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DMPHNError(f"{source}: its DMPHN metadata is not valid JSON ({exc})") from None
    if not isinstance(metadata, dict):
        raise DMPHNError(f"{source}: its DMPHN metadata is not a JSON object")
    return metadata


def _zip_member(path: Path, suffix: str) -> bytes | None:
    try:
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if name.endswith(suffix):
                    return archive.read(name)
    except (OSError, zipfile.BadZipFile) as exc:
        raise DMPHNError(f"cannot read {path}: {exc}") from None
    return None


def _onnx_metadata(path: Path) -> str | None:
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError and friends
        raise DMPHNError(f"cannot read ONNX model {path}: {exc}") from None
    return _onnx_raw_metadata(model)


def _onnx_raw_metadata(model: Any) -> str | None:
    return next((prop.value for prop in model.metadata_props if prop.key == METADATA_KEY), None)


def onnx_model_metadata(model: Any) -> dict[str, Any] | None:
    """The metadata of a loaded ``onnx.ModelProto`` (None when it has none)."""
    return parse_metadata(_onnx_raw_metadata(model), "ONNX model")


def _aoti_metadata(path: Path) -> str | None:
    # Inductor writes the package metadata as a JSON map next to the compiled model
    raw = _zip_member(path, "_metadata.json")
    if raw is None:
        return None
    try:
        return json.loads(raw).get(METADATA_KEY)
    except (json.JSONDecodeError, AttributeError):
        return None


def _openvino_metadata(path: Path) -> str | None:
    import xml.etree.ElementTree as ET

    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise DMPHNError(f"cannot read OpenVINO IR {path}: {exc}") from None
    node = root.find("rt_info/" + "/".join(OPENVINO_RT_INFO_KEY))
    return None if node is None else node.get("value")


def _executorch_metadata(path: Path) -> str | None:
    try:
        from executorch.extension.pybindings import portable_lib
    except ImportError:
        raise DMPHNError(f"reading {path} needs executorch (pip install 'dmphn-deploy[edge]')") from None
    try:
        program = portable_lib._load_program(str(path))
        if EXECUTORCH_METADATA_METHOD not in [program.get_method_name(i) for i in range(program.num_methods())]:
            return None
        values = program.load_method(EXECUTORCH_METADATA_METHOD).call([])
    except Exception as exc:  # noqa: BLE001 - the pybindings raise RuntimeError with the runtime's status
        first = exception_line(exc)
        raise DMPHNError(f"cannot read ExecuTorch program {path}: {first}") from None
    return values[0] if values and isinstance(values[0], str) else None


def read_metadata(path: str | os.PathLike, fmt: str | None = None) -> dict[str, Any] | None:
    """The DMPHN metadata an artifact carries (None when it has none), read without loading a runtime."""
    path = Path(path)
    fmt = fmt or detect_format(path)
    if not path.is_file():
        raise DMPHNError(f"model not found: {path}")
    if fmt == "onnx":
        raw: str | bytes | None = _onnx_metadata(path)
    elif fmt == "torchscript":
        raw = _zip_member(path, "/extra/" + METADATA_KEY)
    elif fmt == "aoti":
        raw = _aoti_metadata(path)
    elif fmt == "tensorrt":
        sidecar = sidecar_path(path)
        raw = sidecar.read_bytes() if sidecar.is_file() else None
        return parse_metadata(raw, sidecar)
    elif fmt == "openvino":
        raw = _openvino_metadata(path)
    elif fmt == "executorch":
        raw = _executorch_metadata(path)
    elif fmt == "checkpoint":
        return None
    else:
        raise DMPHNError(f"unknown artifact format {fmt!r}; use one of {', '.join(FORMATS)}")
    return parse_metadata(raw, path)


def config_of(metadata: dict[str, Any] | None) -> DMPHNConfig | None:
    """The model config recorded in an artifact's metadata (None when it has none)."""
    if not metadata or "config" not in metadata:
        return None
    return DMPHNConfig.from_dict(metadata["config"])


__all__ = [
    "EXECUTORCH_METADATA_METHOD", "FORMATS", "FORMAT_SUFFIXES", "INPUT_NAME", "METADATA_KEY", "OPENVINO_RT_INFO_KEY",
    "OUTPUT_NAME", "artifact_files", "artifact_metadata", "companion_paths", "config_of", "detect_format",
    "is_torchscript_archive", "metadata_json", "onnx_model_metadata",
    "parse_metadata", "read_metadata", "sidecar_path",
]
