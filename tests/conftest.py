"""Shared fixtures. Tests run on tiny images (e.g. 64x128) so CI stays fast on 2 CPU cores."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from dmphn_core.checkpoint import save_checkpoint
from dmphn_core.model import DMPHN, dmphn

#: pytest-xdist workers in this run (1 without xdist); ``pytest -n 2`` runs two processes.
XDIST_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))

# Keep CPU tests deterministic in speed and result: 2 threads, as on CI, split between the xdist
# workers (`-n 2` on 2 cores: one each, so the two processes do not fight over the cores).
torch.set_num_threads(int(os.environ.get("DMPHN_TEST_THREADS", str(max(1, 2 // XDIST_WORKERS)))))


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], object]) -> Path:
    """``<run folder>/shared/<name>``, made by ``build(path)`` once per test run.

    Once also across pytest-xdist workers: they share the run's temporary folder, and the first
    worker to ask builds while the others wait on a file lock (session fixtures alone would
    compile the same package once per worker). A failed build leaves no marker, so the next
    asker tries again and fails with the same error.
    """
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # popen-gw0, popen-gw1, ... sit in the run's folder
    folder = root / "shared"
    folder.mkdir(exist_ok=True)
    path, done = folder / name, folder / f"{name}.done"
    with FileLock(str(folder / f"{name}.lock")):
        if not done.exists():
            build(path)
            done.touch()
    return path


@pytest.fixture(autouse=True)
def restore_torch_threads() -> Iterator[None]:
    """CLI tests run in-process and some pass ``--threads 1``, which sets torch's count for the whole
    process: give the next test the suite's count back (one left at 1 thread ran ~2x slower)."""
    threads = torch.get_num_threads()
    yield
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


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

#: Std of the test models' conv biases. The authors' initialisation zeroes every bias, and
#: with zero biases an export, runtime or C++ backend that drops or misplaces them would
#: pass every parity test. At 0.01 the biases move a DMPHN-1-2-4-8's output by ~0.035 on
#: average (up to ~0.17), far above the fp32 bound of 1e-4, while the output stays near 0.5.
TEST_BIAS_STD = 0.01


def random_model(levels: int | str = 4, layout: str = "design", seed: int = 0) -> DMPHN:
    """A seeded DMPHN in eval mode: the authors' random weights plus small random biases."""
    torch.manual_seed(seed)
    model = dmphn(levels, layout).eval()
    # Own generator: the global stream after this call stays what it was with zero biases.
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                module.bias.normal_(0.0, TEST_BIAS_STD, generator=generator)
    return model


def reference_folder() -> Path | None:
    """The authors' reference data (DMPHN_REFERENCE_DIR, else ../shared/reference/dmphn-authors), if present."""
    configured = os.environ.get("DMPHN_REFERENCE_DIR")
    folder = Path(configured) if configured else Path(__file__).resolve().parents[2] / "shared" / "reference" / "dmphn-authors"
    return folder if (folder / "checkpoints").is_dir() else None


def trained_model(levels: int = 4) -> DMPHN:
    """Trained weights in eval mode, for judging reduced precision.

    Random weights are no judge: their output is ~0.5 +- 0.05 whatever the input, so losing a
    whole level still scores above the fp16/tf32 and bf16 bars (see tests/runtimes/test_compare.py).
    ``levels`` 1 is the shipped demo checkpoint (always present); 3 and 4 are the authors'
    GoPro DMPHN-1-2-4 / -1-2-4-8 (the test skips, saying why, without the reference folder).
    """
    from dmphn_core.checkpoint import DEMO_CHECKPOINT, import_authors_checkpoint, load_checkpoint

    if levels == 1:
        return load_checkpoint(DEMO_CHECKPOINT).build_model().eval()
    folder = reference_folder()
    if folder is None:
        pytest.skip("needs the authors' GoPro weights: set DMPHN_REFERENCE_DIR (see the reference README)")
    name = {3: "DMPHN_1_2_4", 4: "DMPHN_1_2_4_8"}[levels]
    return import_authors_checkpoint(folder / "checkpoints" / name).build_model().eval()


def photo_batch(batch: int, height: int, width: int) -> torch.Tensor:
    """(B, 3, H, W) crops of the bundled photos: the input trained weights are judged on."""
    from export.verify import verification_inputs

    return torch.from_numpy(verification_inputs(batch, height, width)[1][1])


@pytest.fixture
def make_checkpoint(tmp_path: Path) -> Callable[..., Path]:
    """``make_checkpoint(levels=4, layout="design", seed=0) -> path`` of a random-weight checkpoint."""

    def make(levels: int | str = 4, layout: str = "design", seed: int = 0) -> Path:
        path = tmp_path / f"dmphn_{levels}_{layout}_{seed}.pt"
        save_checkpoint(path, random_model(levels, layout, seed), training={"note": "random weights for tests"})
        return path

    return make


@pytest.fixture
def exports_another_model(monkeypatch) -> Callable[[object, str], None]:
    """``exports_another_model(module, "export_onnx")``: that exporter now writes a differently
    seeded model of the same architecture, so verification meets a genuinely wrong artifact
    (not an impossible tolerance). Patched on the module, where the CLI looks it up per call.
    """

    def patch(module: object, name: str) -> None:
        real = getattr(module, name)

        def export_wrong_weights(model: DMPHN, path: Path, **kwargs):
            other = random_model(model.config.levels, model.config.layout, seed=9999)
            return real(other, path, **kwargs)

        monkeypatch.setattr(module, name, export_wrong_weights)

    return patch


#: A test that needs a CUDA device. On a GPU host `pytest -m gpu` selects exactly these; elsewhere they
#: are skipped with the reason (pytest_collection_modifyitems below).
requires_cuda = pytest.mark.gpu
CUDA_MISSING = None if torch.cuda.is_available() else "needs a CUDA GPU; none on this host"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if CUDA_MISSING is None:
        return
    skip = pytest.mark.skip(reason=CUDA_MISSING)
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


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
    """A CPU fp32 .pt2 of DMPHN-1-2 at 32x64 with a dynamic batch, and its source model.

    Made the way a user makes one, ``dmphn-export aoti CKPT -H 32 -W 64 --dynamic-batch`` (which
    verifies it at batch 1 and 2); the checkpoint (:func:`aoti_checkpoint`) and the command's exit
    code and output (:func:`aoti_cli_output`) are kept beside it. Compiling costs 30-50 s on 2
    cores, so the whole run (every xdist worker) shares this one package: the CLI, runner and
    metadata tests, and dmphn-bench / dmphn-parity over every runtime (tests/cli/test_bench.py).
    DMPHN-1-2 keeps the per-patch reference a different computation from the static form at
    half the graph of 1-2-4-8; the C++ tests compile a 1-2-4-8 (``aoti_package_1248``).
    """
    import json

    from typer.testing import CliRunner

    from cli.export import app

    model = random_model(2, seed=21)

    def build(path: Path) -> None:
        save_checkpoint(aoti_checkpoint(path), model, training={"note": "random weights for tests"})
        result = CliRunner().invoke(app, ["aoti", str(aoti_checkpoint(path)), "-H", "32", "-W", "64",
                                          "--dynamic-batch", "-o", str(path)])
        outcome = {"exit_code": result.exit_code, "stdout": result.stdout, "stderr": result.stderr}
        aoti_cli_output(path).write_text(json.dumps(outcome))
        assert result.exit_code == 0, f"dmphn-export aoti failed:\n{result.output}"

    path = built_once(tmp_path_factory, "m2_32x64.pt2", build)
    return path, model


def seed_work_folder(workdir: Path, checkpoint: Path | None, source: Path, fmt: str, batch: int, height: int,
                     width: int, device: str, precision: str) -> Path:
    """Adopt an artifact this run already exported (``source``, its other files beside it) into
    ``workdir``, the benchmark's artifact store, as the entry ``dmphn-bench`` would build for
    ``checkpoint`` (None: the demo weights): verified and hashed like any entry, at the bench's
    bar, so a test times it instead of exporting it again. Returns the entry's path."""
    from dmphn_core.checkpoint import DEMO_CHECKPOINT, load_checkpoint
    from export.cache import ArtifactStore

    model = load_checkpoint(checkpoint or DEMO_CHECKPOINT).build_model()
    bar = {"min_psnr": 0.0} if precision == "int8" else {}  # benchmarks.prepare.ArtifactCache.artifact's
    return ArtifactStore(workdir).adopt(model, fmt, source, batch, height, width, device, precision, **bar)


def aoti_checkpoint(package: Path) -> Path:
    """The checkpoint :func:`aoti_package` was exported from."""
    return package.with_name(package.stem + "_checkpoint.pt")


def aoti_cli_output(package: Path) -> Path:
    """Where :func:`aoti_package` keeps what ``dmphn-export aoti`` printed."""
    return package.with_name(package.name + ".cli.json")


@pytest.fixture(scope="session")
def aoti_package_1248(tmp_path_factory) -> tuple[Path, DMPHN]:
    """A CPU fp32 .pt2 of DMPHN-1-2-4-8 at 32x64 with a dynamic batch, and its source model (the C++ tests).

    Compiling costs 40-90 s on 2 cores; built once per run.
    """
    from export.to_aoti import export_aoti

    model = random_model(4, seed=21)
    path = built_once(tmp_path_factory, "m4_32x64.pt2", lambda path: export_aoti(
        model, path, batch=1, height=32, width=64, device="cpu", precision="fp32", dynamic_batch=True))
    return path, model


@pytest.fixture(scope="session")
def torchscript_module(tmp_path_factory) -> tuple[Path, DMPHN]:
    """A traced DMPHN-1-2-4-8 at 1x3x64x128 and its source model."""
    from export.to_torchscript import export_torchscript

    model = random_model(4, seed=22)
    path = built_once(tmp_path_factory, "m4.ts", lambda path: export_torchscript(
        model, path, batch=1, height=TINY_HW[0], width=TINY_HW[1]))
    return path, model


@pytest.fixture(scope="session")
def onnx_dynamic_batch(tmp_path_factory) -> tuple[DMPHN, Path]:
    """DMPHN-1-2 (seed 5) as ONNX for ?x3x64x128 (a dynamic batch axis), and its model.

    The ONNX Runtime runner tests run it; the int8 tests need a dynamic graph to refuse. One
    export for the run (a dynamic-batch export costs ~5-10 s).
    """
    from export.to_onnx import export_onnx

    model = random_model("1-2", seed=5)
    path = built_once(tmp_path_factory, "m2_seed5_dynamic_batch.onnx", lambda path: export_onnx(
        model, path, batch=1, height=TINY_HW[0], width=TINY_HW[1], dynamic_batch=True))
    return model, path


@pytest.fixture(scope="session")
def ov_int8_demo(tmp_path_factory) -> tuple[Path, dict, DMPHN]:
    """The shipped demo model as an int8 OpenVINO IR at 1x3x32x64, its export info, and the model.

    The default NNCF recipe on 2 calibration batches, without accuracy control (too slow for a
    unit test). Built once per run, so the int8 tests that only need an int8 IR share it.
    """
    import json

    pytest.importorskip("openvino", reason="openvino is not installed (pip install openvino)")
    pytest.importorskip("nncf", reason="int8 export needs nncf (pip install nncf)")
    from dmphn_core.checkpoint import DEMO_CHECKPOINT, load_checkpoint
    from export.to_openvino import export_openvino

    model = load_checkpoint(DEMO_CHECKPOINT).build_model()

    def build(path: Path) -> None:
        info = export_openvino(model, path, batch=1, height=32, width=64, precision="int8", calibration_samples=2,
                               accuracy_control=False)
        path.with_suffix(".info.json").write_text(json.dumps(info, default=str))

    path = built_once(tmp_path_factory, "demo_int8_32x64.xml", build)
    return path, json.loads(path.with_suffix(".info.json").read_text()), model
