import json
import zipfile

import pytest
import torch

from dmphn_core.artifact import METADATA_KEY
from dmphn_core.errors import DMPHNError
from export.to_torchscript import export_torchscript
from runtimes.torch_utils import torchscript_on_purpose
from tests.conftest import TINY_HW, random_model


@pytest.mark.parametrize("levels", [1, 4])
def test_traced_module_reloads_and_matches_pytorch(levels, tmp_path):
    model = random_model(levels)
    path = tmp_path / "m.ts"
    info = export_torchscript(model, path, batch=2, height=TINY_HW[0], width=TINY_HW[1])
    assert info["method"] == "torch.jit.trace" and info["file_bytes"] == path.stat().st_size
    extra = {METADATA_KEY: ""}
    with torchscript_on_purpose():
        loaded = torch.jit.load(str(path), _extra_files=extra)
    x = torch.rand(2, 3, *TINY_HW)
    with torch.no_grad():
        assert (loaded(x) - model(x)).abs().max().item() <= 1e-4
    meta = json.loads(extra[METADATA_KEY])
    assert meta["config"]["levels"] == levels and meta["export_shape"] == [2, 3, *TINY_HW]


def test_metadata_is_a_plain_file_in_the_archive(torchscript_module):
    path, _ = torchscript_module
    with zipfile.ZipFile(path) as archive:
        assert any(name.endswith(f"extra/{METADATA_KEY}") for name in archive.namelist())


def test_bad_shape_and_failed_write_leave_nothing(tmp_path):
    with pytest.raises(ValueError, match="needs H a multiple of 8"):
        export_torchscript(random_model(4), tmp_path / "m.ts", batch=1, height=30, width=64)
    with pytest.raises(DMPHNError, match="does not exist"):
        export_torchscript(random_model(1), tmp_path / "missing" / "m.ts", batch=1, height=16, width=16)
    assert not list(tmp_path.iterdir())


def test_toolkit_torchscript_calls_do_not_warn_and_silence_nothing_else(tmp_path):
    """torch 2.13 deprecates torch.jit.*; the toolkit silences that only around its own calls."""
    import warnings

    from runtimes.torchscript import TorchScriptRunner

    path = tmp_path / "m1.ts"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        filters = list(warnings.filters)
        export_torchscript(random_model(1), path, batch=1, height=16, width=16)
        with TorchScriptRunner(path) as runner:
            runner.infer(torch.rand(1, 3, 16, 16))
        assert warnings.filters == filters  # no filter left behind for the rest of the process
    assert not [w for w in caught if "torch.jit" in str(w.message)], [str(w.message) for w in caught]


def test_trace_fixes_tf32_off_in_every_convolution(tmp_path, monkeypatch):
    """The trace stores cuDNN's allow_tf32 switch as a constant per convolution; PyTorch's default
    is on, which made CUDA "fp32" modules run TF32. Traced here with the switch on globally."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    path = tmp_path / "m.ts"
    export_torchscript(random_model(1), path, batch=1, height=16, width=16)
    with torchscript_on_purpose():
        graph = torch.jit.load(str(path)).inlined_graph
    convolutions = [node for node in graph.nodes() if node.kind() == "aten::_convolution"]
    assert len(convolutions) == 30  # DMPHN-1: 28 convolutions and 2 transposed ones
    assert [list(node.inputs())[-1].toIValue() for node in convolutions] == [False] * 30
    assert torch.backends.cudnn.allow_tf32  # and the caller's setting is back
