"""The supported TensorRT range and the engine/library/GPU match, without TensorRT."""

from __future__ import annotations

from pathlib import Path

import tomllib

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
