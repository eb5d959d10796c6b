"""User-facing errors: the CLI prints them as one line and exits non-zero."""

from __future__ import annotations


class DMPHNError(Exception):
    """A problem with the user's input (file, shape, option), not a bug in the toolkit."""


class CheckpointError(DMPHNError):
    """A checkpoint is missing, corrupt, truncated, foreign or unsafe."""


class ImageError(DMPHNError):
    """An image cannot be read or written."""


class RuntimeUnavailable(DMPHNError):
    """A runtime (TensorRT, CUDA, onnxruntime-gpu…) is not installed or has no device here."""


def exception_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (its type name when it has none): runtimes and exporters
    raise multi-line C++ traces, and the user gets one line."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
