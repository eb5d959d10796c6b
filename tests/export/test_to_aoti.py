import json

import pytest
import torch

from dmphn_core.artifact import METADATA_KEY
from dmphn_core.errors import DMPHNError
from export.to_aoti import export_aoti
from runtimes.aoti import AOTIRunner
from runtimes.compare import compare_outputs, tolerance_for
from tests.conftest import photo_batch, random_model, trained_model

# Every test here that compiles an AOTInductor package (30-70 s each on 2 cores, a C++ build) is
# in the slow tier; the refusals before compiling are not.


@pytest.mark.slow
def test_package_loads_matches_and_carries_metadata(aoti_package):
    path, model = aoti_package
    package = torch._inductor.aoti_load_package(str(path))
    meta = json.loads(package.get_metadata()[METADATA_KEY])
    assert meta["config"] == model.config.to_dict()
    assert meta["aoti"]["device"] == "cpu" and meta["precision"] == "fp32"
    assert meta["input"]["shape"][0] == "batch"  # dynamic batch
    for batch in (1, 3):
        x = torch.rand(batch, 3, 32, 64)
        with torch.no_grad():
            assert (package(x) - model(x)).abs().max().item() <= 1e-4


@pytest.mark.slow
def test_bf16_package_keeps_float32_io(tmp_path):
    model = trained_model(1)  # on random weights a constant 0.5 output passes any sane bf16 bound
    path = tmp_path / "bf16.pt2"
    info = export_aoti(model, path, batch=1, height=16, width=16, precision="bf16")
    assert info["compile_seconds"] > 0
    x = photo_batch(1, 16, 16)
    out = torch._inductor.aoti_load_package(str(path))(x)
    assert out.dtype == torch.float32
    with torch.no_grad():
        expected = model(x)
    assert not torch.equal(out, expected)  # computed in bf16, so close but not equal
    comparison = compare_outputs(out, expected, tolerance_for("bf16"))
    assert comparison.passed, comparison.summary()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"precision": "int8"}, "unsupported AOTInductor precision 'int8'; use one of"), ({"device": "tpu"}, "unknown device"), ({"height": 30}, "multiple of")],
)
def test_bad_requests_fail_before_compiling(tmp_path, kwargs, message):
    args = {"batch": 1, "height": 16, "width": 16, **kwargs}
    with pytest.raises((DMPHNError, ValueError), match=message):
        export_aoti(random_model(1), tmp_path / "m.pt2", **args)
    assert not list(tmp_path.iterdir())


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_cuda_packages_track_fp32(tmp_path, precision):
    model = trained_model(4)  # random weights would let a lost level pass the reduced-precision bars
    path = tmp_path / f"{precision}.pt2"
    export_aoti(model, path, batch=1, height=64, width=128, device="cuda", precision=precision)
    x = photo_batch(1, 64, 128)
    with AOTIRunner(path, device="cuda", precision=precision) as runner:  # TF32 off, as the product runs it
        out = runner.infer(x.cuda())
    with torch.no_grad():
        expected = model(x)
    comparison = compare_outputs(out, expected, tolerance_for(precision))
    assert comparison.passed, comparison.summary()
