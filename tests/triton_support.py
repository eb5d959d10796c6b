"""Shared by the Triton tests: a tiny python-backend repository and why a server cannot run here.

The server tests start the real ``tritonserver`` bundled in nvidia-pytriton (scripts/setup.sh
installs it) on free loopback ports; every server is stopped by its fixture's finalizer.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dmphn_core.errors import RuntimeUnavailable
from tests.conftest import random_model

#: DMPHN-1 at 32x64: a request takes milliseconds, so 200 of them finish in seconds.
SERVE_HW = (32, 64)
MAX_BATCH = 4


def _server_missing() -> str | None:
    try:
        import tritonclient.grpc  # noqa: F401
        import tritonclient.http  # noqa: F401
    except ImportError as exc:
        return f"tritonclient[http,grpc] missing: {exc}"
    from runtimes.triton_server import check_python_stub, find_distribution

    try:
        check_python_stub(find_distribution())
    except RuntimeUnavailable as exc:
        return str(exc)
    return None


TRITON_REASON = _server_missing()
requires_triton = pytest.mark.skipif(
    TRITON_REASON is not None, reason=f"needs the tritonserver of nvidia-pytriton (scripts/setup.sh): {TRITON_REASON}"
)


def write_python_repository(root: Path, *, seed: int = 0, instances: int = 1) -> Path:
    """``root/dmphn`` with the python backend (ONNX Runtime, 1 thread per instance); returns ``root``."""
    from export.to_triton import write_triton_repository

    height, width = SERVE_HW
    write_triton_repository(random_model(1, seed=seed), root, backend="python", height=height, width=width,
                            max_batch=MAX_BATCH, instances=instances, threads=1)
    return root
