"""Shared fixtures. Tests run on tiny images (e.g. 64x128) so CI stays fast on 2 CPU cores."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from dmphn_core.checkpoint import save_checkpoint
from dmphn_core.model import DMPHN, dmphn

# Keep CPU tests deterministic in speed and result: 2 threads, as on CI.
torch.set_num_threads(int(os.environ.get("DMPHN_TEST_THREADS", "2")))

@pytest.fixture(scope="session", autouse=True)
def isolated_artifact_cache(tmp_path_factory) -> Iterator[Path]:
    """Commands that cache artifacts (``--runtime auto``) write under a temporary folder, never ~/.cache."""
    from export.cache import CACHE_ENV

    folder = tmp_path_factory.mktemp("artifact_cache")
    old = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(folder)
    yield folder
    if old is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = old


#: The small shape most tests use; fits every hierarchy (1-2-4-8 needs H%8, W%16).
TINY_HW = (64, 128)


def random_model(levels: int | str = 4, layout: str = "design", seed: int = 0) -> DMPHN:
    torch.manual_seed(seed)
    return dmphn(levels, layout).eval()


@pytest.fixture
def make_checkpoint(tmp_path: Path) -> Callable[..., Path]:
    """``make_checkpoint(levels=4, layout="design", seed=0) -> path`` of a random-weight checkpoint."""

    def make(levels: int | str = 4, layout: str = "design", seed: int = 0) -> Path:
        path = tmp_path / f"dmphn_{levels}_{layout}_{seed}.pt"
        save_checkpoint(path, random_model(levels, layout, seed), training={"note": "random weights for tests"})
        return path

    return make


requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU; none on this host")


def _tensorrt_missing() -> str | None:
    """Why TensorRT engines cannot be built here (None where they can)."""
    from dmphn_core.errors import RuntimeUnavailable
    from export.to_tensorrt import check_tensorrt_available

    try:
        check_tensorrt_available()
    except RuntimeUnavailable as exc:
        return str(exc)
    return None


TRT_REASON = _tensorrt_missing()
requires_tensorrt = pytest.mark.skipif(TRT_REASON is not None, reason=f"needs tensorrt + CUDA: {TRT_REASON}")


@pytest.fixture(scope="session")
def aoti_package(tmp_path_factory) -> tuple[Path, DMPHN]:
    """A CPU fp32 .pt2 of DMPHN-1-2-4-8 at 32x64 with a dynamic batch, and its source model.

    Compiling costs ~40 s on 2 cores, so the whole session shares this one package.
    """
    from export.to_aoti import export_aoti

    model = random_model(4, seed=21)
    path = tmp_path_factory.mktemp("aoti") / "m4_32x64.pt2"
    export_aoti(model, path, batch=1, height=32, width=64, device="cpu", precision="fp32", dynamic_batch=True)
    return path, model


@pytest.fixture(scope="session")
def torchscript_module(tmp_path_factory) -> tuple[Path, DMPHN]:
    """A traced DMPHN-1-2-4-8 at 1x3x64x128 and its source model."""
    from export.to_torchscript import export_torchscript

    model = random_model(4, seed=22)
    path = tmp_path_factory.mktemp("ts") / "m4.ts"
    export_torchscript(model, path, batch=1, height=TINY_HW[0], width=TINY_HW[1])
    return path, model
