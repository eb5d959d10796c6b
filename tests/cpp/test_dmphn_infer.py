"""The C++ tool ``dmphn_infer`` (cpp/) against the Python pipeline.

The session fixture builds cpp/ with scripts/build_cpp.sh (the README's command); a build
failure fails the tests, only a missing toolchain skips them. Each parity test runs the
same read -> reflect-pad -> model -> crop on a bundled photo whose size is not a multiple
of the size block, in C++ and in PyTorch, and compares the raw float32 output (.npy).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from dmphn_core.geometry import crop_to, pad_to_block
from dmphn_core.imageio import image_to_tensor, read_image, write_image
from dmphn_core.model import DMPHN
from dmphn_core.samples import sample_photo
from runtimes.compare import compare_outputs, tolerance_for
from runtimes.torch_utils import tf32_mode
from tests.conftest import TRT_REASON, random_model, requires_cuda

# The first build compiles against LibTorch (~1-5 min on 2 busy cores): more than the
# suite's default per-test timeout, which includes fixture setup. For the same reason the
# module is in the slow tier (`-m "not slow"` leaves it out; CI runs it).
pytestmark = [pytest.mark.cpp, pytest.mark.slow, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "scripts" / "build_cpp.sh"
FP32_MAX_ABS = 1e-4
#: Not a multiple of DMPHN-1-2-4-8's size block (8, 16): 100x150 pads to 104x160.
PHOTO_HW = (100, 150)
#: Pads to 32x64, the shape of the session's `aoti_package_1248`.
SMALL_HW = (30, 57)
RUN_TIMEOUT_S = 300


def _missing_toolchain() -> str | None:
    if shutil.which("cmake") is None:
        return "cmake is not installed"
    if not any(shutil.which(compiler) for compiler in ("c++", "g++", "clang++")):
        return "no C++ compiler (c++, g++ or clang++) on PATH"
    return None


@pytest.fixture(scope="session")
def dmphn_infer() -> Path:
    """Path of the built tool; builds (incrementally) with scripts/build_cpp.sh."""
    reason = _missing_toolchain()
    if reason:
        pytest.skip(f"cannot build the C++ part: {reason}")
    # pytest never runs apt: scripts/setup.sh installs the packages and the ONNX Runtime headers
    # (scripts/install_cpp_deps.sh); the build uses the headers when they are there
    env = {**os.environ, "DMPHN_NO_INSTALL": "1", "PYTHON": sys.executable}
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], cwd=REPO, env=env, capture_output=True, text=True, timeout=1500
    )
    if result.returncode != 0:
        log = (result.stdout + result.stderr)[-6000:]
        pytest.fail(f"scripts/build_cpp.sh failed with exit code {result.returncode}:\n{log}", pytrace=False)
    binary = Path(result.stdout.strip().splitlines()[-1])
    assert binary.is_file() and os.access(binary, os.X_OK), f"build_cpp.sh printed {binary}, not an executable"
    return binary


@pytest.fixture(scope="session")
def compiled_backends(dmphn_infer: Path) -> list[str]:
    result = subprocess.run([str(dmphn_infer), "--list-backends"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def run_tool(binary: Path, *args: str | os.PathLike) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(binary), *map(str, args)], capture_output=True, text=True, timeout=RUN_TIMEOUT_S
    )


def python_deblur(model: DMPHN, image_path: Path, device: str = "cpu") -> np.ndarray:
    """The Python pipeline: read -> pad_to_block -> model -> crop_to, as (1, 3, H, W)."""
    x = image_to_tensor(read_image(image_path)).to(device)
    padded, size = pad_to_block(x, model.geometry)
    with torch.no_grad(), tf32_mode(False):  # fp32 on CUDA too (PyTorch allows TF32 convs by default)
        return crop_to(model.to(device)(padded), size).cpu().numpy()


def deblur_cpp(binary: Path, model_path: Path, image_path: Path, out_dir: Path, *extra: str) -> np.ndarray:
    """Run the tool; check its PNG against its own .npy; return the .npy."""
    out_png, out_npy = out_dir / "cpp_out.png", out_dir / "cpp_out.npy"
    result = run_tool(binary, "--model", model_path, "-i", image_path, "-o", out_png, "--npy", out_npy, *extra)
    assert result.returncode == 0, f"dmphn_infer failed:\n{result.stdout}{result.stderr}"
    assert "load:" in result.stdout and "infer: mean" in result.stdout, result.stdout
    raw = np.load(out_npy)
    h, w = read_image(image_path).shape[:2]
    assert raw.dtype == np.float32 and raw.shape == (1, 3, h, w)
    png = cv2.cvtColor(cv2.imread(str(out_png), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)
    assert png.shape == (h, w, 3) and png.dtype == np.uint8
    # dmphn_core.imageio.write_image's rounding, on the same floats: must agree bit for bit.
    expected = (np.clip(raw[0].transpose(1, 2, 0), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(png, expected)
    return raw


def assert_close(output: np.ndarray, reference: np.ndarray, what: str) -> None:
    comparison = compare_outputs(output, reference, tolerance_for("fp32", max_abs=FP32_MAX_ABS))
    assert comparison.passed, f"{what}: {comparison.summary()}"


def write_photo(path: Path, height: int, width: int, kind: str = "rgb8") -> Path:
    """A crop of the bundled rocket photo: 8-bit RGB / RGBA or 16-bit grey PNG, or a JPEG."""
    photo = sample_photo(height, width, "rocket.jpg")
    if kind == "rgb8":
        write_image(path, photo)
    elif kind == "rgba8":
        bgr = (cv2.cvtColor(photo, cv2.COLOR_RGB2BGR) * 255.0 + 0.5).astype(np.uint8)
        alpha = np.random.default_rng(0).integers(0, 256, (height, width, 1), dtype=np.uint8)
        assert cv2.imwrite(str(path), np.concatenate([bgr, alpha], axis=2))
    elif kind == "gray16":
        grey = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
        assert cv2.imwrite(str(path), (grey * 65535.0 + 0.5).astype(np.uint16))
    elif kind == "jpeg":
        bgr = (cv2.cvtColor(photo, cv2.COLOR_RGB2BGR) * 255.0 + 0.5).astype(np.uint8)
        assert cv2.imwrite(str(path), bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
    else:
        raise ValueError(kind)
    return path


@pytest.fixture(scope="module")
def torchscript_photo(tmp_path_factory) -> tuple[Path, DMPHN, Path]:
    """A TorchScript DMPHN-1-2-4-8 traced at the padded size of a 100x150 photo crop."""
    folder = tmp_path_factory.mktemp("cpp_ts")
    from export.to_torchscript import export_torchscript

    model = random_model(levels=4)
    image = write_photo(folder / "photo.png", *PHOTO_HW)
    height, width = model.geometry.padded_size(*PHOTO_HW)
    assert (height, width) != PHOTO_HW, "the photo must need padding"
    path = folder / f"m4_{height}x{width}.ts"
    export_torchscript(model, path, batch=1, height=height, width=width)
    return path, model, image


# ---- parity ------------------------------------------------------------------------------
def test_torchscript_parity_on_photo(dmphn_infer, torchscript_photo, tmp_path):
    path, model, image = torchscript_photo
    raw = deblur_cpp(dmphn_infer, path, image, tmp_path, "--repeat", "2")
    assert_close(raw, python_deblur(model, image), "torchscript C++ vs PyTorch")
    # sizes read width x height and say so, as dmphn-deblur prints them (issue 28)
    shown = run_tool(dmphn_infer, "--model", path, "-i", image, "-o", tmp_path / "again.png").stdout
    (height, width), (padded_h, padded_w) = PHOTO_HW, model.geometry.padded_size(*PHOTO_HW)
    assert f"image: {width}x{height} WxH, padded to {padded_w}x{padded_h} WxH" in shown, shown
    assert "size block 16x8 WxH" in shown, shown


def test_torchscript_replicate_fallback(dmphn_infer, tmp_path):
    """An image smaller than its pad: pad_to_block switches to edge replication.

    DMPHN-1-2 (size block 4x8, read from the metadata) keeps the trace cheap: 3x3 -> 4x8.
    """
    from export.to_torchscript import export_torchscript

    model = random_model(levels=2, seed=3)
    height, width = 3, 3
    padded_hw = model.geometry.padded_size(height, width)
    assert padded_hw[1] - width >= width, "the pad must exceed the side to exercise the fallback"
    image = write_photo(tmp_path / "tiny.png", height, width)
    path = tmp_path / "m2_tiny.ts"
    export_torchscript(model, path, batch=1, height=padded_hw[0], width=padded_hw[1])
    raw = deblur_cpp(dmphn_infer, path, image, tmp_path)
    assert_close(raw, python_deblur(model, image), "torchscript C++ vs PyTorch (replicate padding)")


@pytest.mark.parametrize("kind", ["rgb8", "rgba8", "gray16", "jpeg"])
def test_aoti_parity_on_photo(dmphn_infer, compiled_backends, aoti_package_1248, tmp_path, kind):
    """Also checks the C++ image reader against OpenCV's (read_image) for each file kind."""
    if "aoti" not in compiled_backends:
        pytest.skip("the aoti backend was not compiled (LibTorch without AOTIModelPackageLoader)")
    path, model = aoti_package_1248
    image = write_photo(tmp_path / f"photo.{'jpg' if kind == 'jpeg' else 'png'}", *SMALL_HW, kind=kind)
    if kind == "jpeg":
        probe = run_tool(dmphn_infer, "--model", path, "-i", image, "-o", tmp_path / "probe.png")
        if probe.returncode == 2 and "JPEG support was not compiled in" in probe.stderr:
            pytest.skip("dmphn_infer was built without libjpeg (apt-get install libjpeg-dev)")
    raw = deblur_cpp(dmphn_infer, path, image, tmp_path, "--repeat", "2", "--warmup", "1")
    assert_close(raw, python_deblur(model, image), f"aoti C++ vs PyTorch ({kind} input)")


def test_onnxruntime_parity_on_photo(dmphn_infer, compiled_backends, tmp_path):
    if "onnxruntime" not in compiled_backends:
        pytest.skip(
            "the onnxruntime backend was not compiled: no ONNX Runtime C++ headers on this machine "
            "(Debian 12 has none; run bash scripts/install_cpp_deps.sh, as scripts/setup.sh does, or set ONNXRUNTIME_ROOT)"
        )
    from export.to_onnx import export_onnx

    model = random_model(levels=4, seed=5)
    height, width = model.geometry.padded_size(*SMALL_HW)
    path = tmp_path / "m4.onnx"
    export_onnx(model, path, batch=1, height=height, width=width)
    image = write_photo(tmp_path / "photo.png", *SMALL_HW)
    raw = deblur_cpp(dmphn_infer, path, image, tmp_path)
    assert_close(raw, python_deblur(model, image), "onnxruntime C++ vs PyTorch")


def test_openvino_parity_on_photo(dmphn_infer, compiled_backends, tmp_path):
    if "openvino" not in compiled_backends:
        try:
            import openvino  # noqa: F401
        except ImportError:
            pytest.skip("the openvino backend was not compiled: openvino is not installed (pip install openvino)")
        pytest.fail("openvino is installed but the openvino backend was not compiled; see the cmake output")
    from export.to_openvino import export_openvino

    model = random_model(levels=4, seed=5)
    height, width = model.geometry.padded_size(*SMALL_HW)
    path = tmp_path / "m4.xml"
    export_openvino(model, path, batch=1, height=height, width=width)
    image = write_photo(tmp_path / "photo.png", *SMALL_HW)
    raw = deblur_cpp(dmphn_infer, path, image, tmp_path)
    assert_close(raw, python_deblur(model, image), "openvino C++ vs PyTorch")


def test_executorch_parity_on_photo(dmphn_infer, compiled_backends, tmp_path):
    if "executorch" not in compiled_backends:
        try:
            import executorch  # noqa: F401
        except ImportError:
            pytest.skip("the executorch backend was not compiled: executorch is not installed "
                        "(pip install 'dmphn-deploy[edge]'; scripts/setup.sh does)")
        pytest.fail("executorch is installed but the executorch backend was not compiled; see the cmake output")
    from export.to_executorch import export_executorch

    # two levels: lowering a 4-level DMPHN to XNNPACK takes minutes on 2 cores, and no C++ path differs
    model = random_model(levels="1-2", seed=5)
    height, width = model.geometry.padded_size(*SMALL_HW)
    path = tmp_path / "m2.pte"
    export_executorch(model, path, batch=1, height=height, width=width)
    image = write_photo(tmp_path / "photo.png", *SMALL_HW)
    raw = deblur_cpp(dmphn_infer, path, image, tmp_path)
    assert_close(raw, python_deblur(model, image), "executorch C++ vs PyTorch")


@requires_cuda
def test_torchscript_cuda_parity(dmphn_infer, tmp_path):
    from export.to_torchscript import export_torchscript

    model = random_model(levels=4, seed=7)
    height, width = model.geometry.padded_size(*SMALL_HW)
    path = tmp_path / "m4_cuda.ts"
    export_torchscript(model, path, batch=1, height=height, width=width, device="cuda")
    image = write_photo(tmp_path / "photo.png", *SMALL_HW)
    raw = deblur_cpp(dmphn_infer, path, image, tmp_path, "--device", "cuda")
    # Traced with TF32 off (the trace fixes that switch), so fp32's tolerance holds on CUDA too.
    comparison = compare_outputs(raw, python_deblur(model, image, "cuda"), tolerance_for("fp32", max_abs=FP32_MAX_ABS))
    assert comparison.passed, comparison.summary()


@requires_cuda
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_aoti_cuda_parity(dmphn_infer, compiled_backends, tmp_path, precision):
    """A CUDA AOTInductor package runs in the C++ tool (--device cuda) as PyTorch's CUDA model does."""
    if "aoti" not in compiled_backends:
        pytest.skip("the aoti backend was not compiled (LibTorch without AOTIModelPackageLoader)")
    from export.to_aoti import export_aoti

    model = random_model(levels=4, seed=11)
    height, width = model.geometry.padded_size(*SMALL_HW)
    path = tmp_path / f"m4_cuda_{precision}.pt2"
    export_aoti(model, path, batch=1, height=height, width=width, device="cuda", precision=precision)
    image = write_photo(tmp_path / "photo.png", *SMALL_HW)
    raw = deblur_cpp(dmphn_infer, path, image, tmp_path, "--device", "cuda", "--repeat", "2")
    tolerance = tolerance_for("fp32", max_abs=FP32_MAX_ABS) if precision == "fp32" else tolerance_for(precision)
    comparison = compare_outputs(raw, python_deblur(model, image, "cuda"), tolerance)
    assert comparison.passed, f"aoti {precision} C++ (cuda) vs PyTorch: {comparison.summary()}"


@requires_cuda
@pytest.mark.tensorrt
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt_cuda_parity(dmphn_infer, compiled_backends, tmp_path, precision):
    """The C++ TensorRT backend runs an engine built by export/to_tensorrt.py like PyTorch does."""
    if "tensorrt" not in compiled_backends:
        pytest.skip("the tensorrt backend was not compiled (NvInfer.h / libnvinfer or the CUDA runtime not found; "
                    "set TENSORRT_ROOT)")
    if TRT_REASON is not None:
        pytest.skip(f"cannot build the engine in Python: {TRT_REASON}")
    from export.to_tensorrt import build_engine

    model = random_model(levels=4, seed=9)
    height, width = model.geometry.padded_size(*SMALL_HW)
    path = tmp_path / f"m4_{precision}.engine"
    build_engine(model, path, batch=1, height=height, width=width, precision=precision)
    image = write_photo(tmp_path / "photo.png", *SMALL_HW)
    raw = deblur_cpp(dmphn_infer, path, image, tmp_path, "--device", "cuda", "--repeat", "2")
    tolerance = tolerance_for("fp32", max_abs=FP32_MAX_ABS) if precision == "fp32" else tolerance_for("fp16")
    comparison = compare_outputs(raw, python_deblur(model, image, "cuda"), tolerance)
    assert comparison.passed, f"tensorrt {precision} C++ vs PyTorch: {comparison.summary()}"


@requires_cuda
@pytest.mark.tensorrt
def test_tensorrt_engine_from_another_tensorrt_is_refused_by_name(dmphn_infer, compiled_backends, tmp_path):
    """The sidecar's TensorRT release is checked before deserialising, with a one-line reason."""
    if "tensorrt" not in compiled_backends or TRT_REASON is not None:
        pytest.skip(f"needs the compiled tensorrt backend and the TensorRT builder: {TRT_REASON or 'not compiled'}")
    import json

    from dmphn_core.artifact import sidecar_path
    from export.to_tensorrt import build_engine

    model = random_model(levels=1, seed=9)
    height, width = model.geometry.padded_size(*SMALL_HW)
    path = tmp_path / "m1.engine"
    build_engine(model, path, batch=1, height=height, width=width, precision="fp32")
    sidecar = json.loads(sidecar_path(path).read_text())
    sidecar["tensorrt"]["version"] = "9.0.0.1"
    sidecar_path(path).write_text(json.dumps(sidecar))
    image = write_photo(tmp_path / "photo.png", *SMALL_HW)
    result = run_tool(dmphn_infer, "--model", path, "-i", image, "-o", tmp_path / "out.png", "--device", "cuda")
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "built with TensorRT 9.0.0.1" in lines[0], result.stderr


# ---- bad input ---------------------------------------------------------------------------
def _bad_case(case: str, folder: Path, model_path: Path, image: Path) -> tuple[list[str], str]:
    """Arguments (without -o) for a failing run, and a piece its error line must contain."""
    if case == "corrupt_png":
        bad = folder / "corrupt.png"
        bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 8)
        return ["--model", str(model_path), "-i", str(bad)], "corrupt"
    if case == "truncated_png":
        bad = folder / "truncated.png"
        bad.write_bytes(image.read_bytes()[:300])
        return ["--model", str(model_path), "-i", str(bad)], "truncated"
    if case == "missing_image":
        return ["--model", str(model_path), "-i", str(folder / "absent.png")], "image not found"
    if case == "missing_model":
        return ["--model", str(folder / "absent.ts"), "-i", str(image)], "model not found"
    if case == "corrupt_model":
        bad = folder / "corrupt.ts"
        bad.write_bytes(model_path.read_bytes()[:4096])
        return ["--model", str(bad), "-i", str(image)], "cannot load TorchScript"
    if case == "shape_mismatch":
        small = write_photo(folder / "small.png", 40, 40)
        return ["--model", str(model_path), "-i", str(small)], "1x3x40x48"
    if case == "unknown_backend":
        return ["--model", str(model_path), "--backend", "tflite", "-i", str(image)], "unknown backend tflite"
    raise ValueError(case)


@pytest.mark.parametrize(
    "case",
    ["corrupt_png", "truncated_png", "missing_image", "missing_model", "corrupt_model", "shape_mismatch",
     "unknown_backend"],
)
def test_bad_input_one_line_exit_2(dmphn_infer, torchscript_photo, tmp_path, case):
    model_path, _, image = torchscript_photo
    args, expected = _bad_case(case, tmp_path, model_path, image)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out_png, out_npy = out_dir / "result.png", out_dir / "result.npy"
    out_png.write_bytes(b"previous result")  # must survive a failed run untouched

    result = run_tool(dmphn_infer, *args, "-o", out_png, "--npy", out_npy)

    assert result.returncode == 2, f"exit {result.returncode}\n{result.stdout}{result.stderr}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert expected in lines[0], lines[0]
    assert out_png.read_bytes() == b"previous result"
    assert sorted(p.name for p in out_dir.iterdir()) == ["result.png"], "a temporary or partial file was left"


def test_shape_mismatch_names_both_shapes(dmphn_infer, torchscript_photo, tmp_path):
    model_path, model, _ = torchscript_photo
    small = write_photo(tmp_path / "small.png", 40, 40)
    result = run_tool(dmphn_infer, "--model", model_path, "-i", small, "-o", tmp_path / "out.png")
    assert result.returncode == 2
    exported = "x".join(map(str, (1, 3, *model.geometry.padded_size(*PHOTO_HW))))
    padded = "x".join(map(str, (1, 3, *model.geometry.padded_size(40, 40))))
    assert exported in result.stderr and padded in result.stderr, result.stderr
    assert not (tmp_path / "out.png").exists()
