"""The supported TensorRT range and the engine/library/GPU match, without TensorRT."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from runtimes.tensorrt_compat import SUPPORTED_RANGE, engine_mismatch, release, unsupported_version_reason

REPO = Path(__file__).resolve().parents[2]


def test_pyproject_pins_the_supported_range():
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert [req for req in extras["gpu"] if req.startswith("tensorrt")] == [f"tensorrt{SUPPORTED_RANGE}"]


def test_only_tensorrt_10_builds():
    assert unsupported_version_reason("10.0.1.6") is None and unsupported_version_reason("10.16.0.72") is None
    for version in ("11.0.0.1", "9.3.0.1", "unknown"):
        reason = unsupported_version_reason(version)
        assert reason and version in reason and SUPPORTED_RANGE in reason


def test_release_drops_the_build_number():
    assert release("10.3.0.26") == (10, 3, 0) == release("10.3.0")
    assert release("10.16.1.11") != release("10.16.0.72")


def test_engine_mismatch():
    meta = {"tensorrt": {"version": "10.3.0.26"}, "gpu": {"name": "NVIDIA H100", "compute_capability": "9.0"}}
    assert engine_mismatch(meta, "10.3.0.26", "9.0") is None
    assert engine_mismatch(meta, "10.3.0.99", "9.0") is None  # same release, other build: TensorRT decides
    assert "built with TensorRT 10.3.0.26, but this is TensorRT 10.4.0.1" in engine_mismatch(meta, "10.4.0.1", "9.0")
    assert "compute capability 9.0 (NVIDIA H100)" in engine_mismatch(meta, "10.3.0.26", "8.9")
    assert engine_mismatch(None, "10.3.0.26", "8.9") is None and engine_mismatch({}, "10.3.0.26", "8.9") is None


def test_engine_built_on_another_gpu_model_of_the_same_architecture_is_refused():
    """An H100 engine on an H200 (both compute capability 9.0): TensorRT wants the same GPU model."""
    meta = {"tensorrt": {"version": "10.3.0.26"}, "gpu": {"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}}
    message = engine_mismatch(meta, "10.3.0.26", "9.0", "NVIDIA H200")
    assert "built on a NVIDIA H100 80GB HBM3, but this GPU is a NVIDIA H200" in message
    assert engine_mismatch(meta, "10.3.0.26", "9.0", "NVIDIA H100 80GB HBM3") is None
    assert engine_mismatch({"gpu": {"compute_capability": "9.0"}}, "10.3.0.26", "9.0", "NVIDIA H200") is None


def test_gpu_extra_lists_only_packages_the_code_imports():
    """Every distribution of the `gpu` extra is imported by some module of the toolkit (cuda-python was
    listed, imported by nothing)."""
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["gpu"]
    sources = "\n".join(path.read_text() for folder in ("dmphn_core", "runtimes", "export", "benchmarks", "cli")
                        for path in (REPO / folder).rglob("*.py"))
    for requirement in extra:
        module = re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].replace("-", "_")
        assert re.search(rf"^\s*(import|from) {module}\b", sources, re.MULTILINE), f"{requirement} is imported by nothing"


def test_cpp_size_block_for_engines_without_sidecar_is_the_universal_one():
    """The C++ TensorRT backend pads an engine without a sidecar to a block every DMPHN accepts:
    the same block as dmphn_core.tiling (its one home; C++ cannot import it)."""
    from dmphn_core.tiling import universal_size_block

    source = (REPO / "cpp" / "src" / "backends" / "tensorrt_backend.cpp").read_text()
    found = re.search(r"kUniversalSizeBlock\{(\d+), (\d+)\}", source)
    assert found and (int(found[1]), int(found[2])) == universal_size_block()
