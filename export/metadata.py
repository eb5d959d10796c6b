"""What every exported artifact says about itself: I/O names, layout, range, size block.

ONNX stores it in ``metadata_props``, TorchScript in an extra file, AOTInductor packages
and TensorRT engines in a JSON sidecar; the C++ runner and ``dmphn-deblur`` read it back.
"""

from __future__ import annotations

import json
import platform
from typing import Any

import torch

from dmphn_core import __version__
from dmphn_core.model import DMPHNConfig

INPUT_NAME = "blurred"
OUTPUT_NAME = "deblurred"
#: Key of the JSON blob in ONNX metadata_props and name of the TorchScript extra file.
METADATA_KEY = "dmphn.json"


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
