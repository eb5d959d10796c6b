"""Which kind of model file each runtime runs, and what to run when ``--model`` and ``--runtime`` disagree.

``dmphn-deblur --runtime ort --model ckpt.pt`` used to reach ONNX Runtime with a checkpoint and
fail deep inside it ("Protobuf parsing failed"). This says instead, in one line, which export
command makes the file that runtime needs.
"""

from __future__ import annotations

from pathlib import Path

from dmphn_core.artifact import detect_format
from dmphn_core.checkpoint import DEMO_CHECKPOINT
from dmphn_core.errors import DMPHNError

#: The artifact format each runtime key runs (dmphn_core.artifact.FORMAT_SUFFIXES names them).
RUNTIME_FORMATS = {
    "torch": "checkpoint",
    "torch-ref": "checkpoint",
    "compile": "checkpoint",
    "torchscript": "torchscript",
    "ort": "onnx",
    "aoti": "aoti",
    "trt": "tensorrt",
}

#: How to make each exported format from a checkpoint ({ckpt}, {stem}). TorchScript, AOTInductor
#: and TensorRT files have one input size; dmphn-deblur runs larger images in tiles of it.
EXPORT_COMMANDS = {
    "onnx": "dmphn-export onnx {ckpt} --dynamic-hw -o {stem}.onnx",
    "torchscript": "dmphn-export torchscript {ckpt} -H 256 -W 256 -o {stem}.ts",
    "aoti": "dmphn-export aoti {ckpt} -H 256 -W 256 -o {stem}.pt2",
    "tensorrt": "dmphn-export trt {ckpt} -H 720 -W 1280 --precision fp16 -o {stem}.engine",
}


def check_model_fits_runtime(model: Path | None, runtime: str | None) -> None:
    """Raise DMPHNError naming the command to run when ``runtime`` cannot run ``model``'s kind of file.

    Silent when no runtime is named, the runtime is unknown, or the file's kind cannot be told
    (those are reported, with their own messages, when the runner is made).
    """
    path = model if model is not None else DEMO_CHECKPOINT
    needed = RUNTIME_FORMATS.get(runtime or "")
    if needed is None or not path.is_file():
        return
    try:
        actual = detect_format(path)
    except DMPHNError:
        return
    if actual == needed:
        return
    if actual == "checkpoint":
        command = EXPORT_COMMANDS[needed].format(ckpt=path, stem=path.with_suffix(""))
        raise DMPHNError(
            f"--runtime {runtime} runs an exported {needed} file, but {path} is a checkpoint; "
            f"export it first: {command}, then pass that file as --model (or leave out --runtime)"
        )
    checkpoint_runtimes = ", ".join(k for k, v in RUNTIME_FORMATS.items() if v == "checkpoint")
    raise DMPHNError(
        f"--runtime {runtime} runs a {needed} file, but {path} is a {actual} file; leave out --runtime "
        f"to run it with its own runtime" + (f" ({checkpoint_runtimes} need a checkpoint .pt)" if needed == "checkpoint" else "")
    )
