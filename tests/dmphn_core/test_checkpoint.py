import os
import pickle
from collections import OrderedDict

import pytest
import torch
from torch import nn

from dmphn_core.checkpoint import (
    import_authors_checkpoint,
    load_checkpoint,
    load_model,
    map_authors_state_dict,
    save_checkpoint,
)
from dmphn_core.errors import CheckpointError
from tests.conftest import random_model


def test_round_trip_keeps_weights_config_and_training(tmp_path):
    model = random_model(3, "authors", seed=5)
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, training={"step": 12, "psnr": 30.5}, resume={"step": torch.tensor(12)})
    ckpt = load_checkpoint(path)
    assert ckpt.config == model.config
    assert ckpt.training == {"step": 12, "psnr": 30.5}
    assert int(ckpt.resume["step"]) == 12
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(load_model(path)(x), model(x), rtol=0, atol=0)


def test_fp16_checkpoint_loads_as_float32(tmp_path):
    model = random_model(2)
    path = tmp_path / "half.pt"
    save_checkpoint(path, model, dtype=torch.float16)
    assert next(iter(load_checkpoint(path).state_dict.values())).dtype == torch.float16
    loaded = load_model(path)
    assert next(loaded.parameters()).dtype == torch.float32
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert (loaded(x) - model(x)).abs().max() < 1e-2


def test_bare_state_dict_file_is_accepted(tmp_path):
    model = random_model(2)
    path = tmp_path / "sd.pt"
    torch.save(model.state_dict(), path)
    assert load_checkpoint(path).config.levels == 2


def test_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    save_checkpoint(path, random_model(1), training={"v": 1})

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_checkpoint(path, random_model(1), training={"v": 2})
    monkeypatch.undo()
    assert load_checkpoint(path).training == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


class _Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


class _Shell:
    def __reduce__(self):
        return (os.system, ("echo this must never run",))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "checkpoint not found"),
        (lambda p: p.write_bytes(b"\x00garbage" * 100), "corrupt, truncated or not a torch file"),
        (lambda p: torch.save({"weights": torch.zeros(2)}, p), "not a DMPHN checkpoint"),
        (lambda p: p.write_bytes(pickle.dumps(_Payload())), "corrupt, truncated"),
        (lambda p: torch.save({"a": _Payload()}, p), "refused to load .* as unsafe: it asks to create (builtins\\.)?print"),
        # torch 2.13 words a blocked module differently ("unsupported GLOBAL posix.system … is blocked")
        (lambda p: torch.save({"a": _Shell()}, p), "refused to load .* as unsafe: it asks to create (posix|os).system"),
    ],
    ids=["missing", "garbage", "foreign", "raw-pickle", "code-object", "blocked-module"],
)
def test_bad_files_raise_one_clear_checkpoint_error(tmp_path, make, message, capsys):
    path = tmp_path / "bad.pt"
    make(path)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)
    assert "this must never run" not in capsys.readouterr().out


def test_truncated_checkpoint_is_rejected(tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint(path, random_model(1))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="corrupt, truncated"):
        load_checkpoint(path)


def test_nan_weights_are_rejected(tmp_path):
    model = random_model(1)
    with torch.no_grad():
        model.decoders[0].layers[8].weight[0, 0, 0, 0] = float("nan")
    path = tmp_path / "nan.pt"
    save_checkpoint(path, model)
    with pytest.raises(CheckpointError, match="NaN or Inf"):
        load_checkpoint(path)


def test_mismatched_weights_name_the_problem(tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint(path, random_model(2))
    payload = torch.load(path, weights_only=True)
    payload["config"]["levels"] = 3
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="do not fit DMPHN-1-2-4"):
        load_model(path)


# -- the authors' per-level files -------------------------------------------------------

def _authors_block(channels):
    return nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1))


class AuthorsEncoder(nn.Module):
    """Same attribute names as the authors' models.Encoder (layer1..layer11, no 4 and 8)."""

    def __init__(self):
        super().__init__()
        self.layer1 = nn.Conv2d(3, 32, 3, padding=1)
        self.layer2, self.layer3 = _authors_block(32), _authors_block(32)
        self.layer5 = nn.Conv2d(32, 64, 3, stride=2, padding=1)
        self.layer6, self.layer7 = _authors_block(64), _authors_block(64)
        self.layer9 = nn.Conv2d(64, 128, 3, stride=2, padding=1)
        self.layer10, self.layer11 = _authors_block(128), _authors_block(128)

    def forward(self, x):
        x = self.layer1(x)
        x = self.layer2(x) + x
        x = self.layer3(x) + x
        x = self.layer5(x)
        x = self.layer6(x) + x
        x = self.layer7(x) + x
        x = self.layer9(x)
        x = self.layer10(x) + x
        return self.layer11(x) + x


class AuthorsDecoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer13, self.layer14 = _authors_block(128), _authors_block(128)
        self.layer16 = nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1)
        self.layer17, self.layer18 = _authors_block(64), _authors_block(64)
        self.layer20 = nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1)
        self.layer21, self.layer22 = _authors_block(32), _authors_block(32)
        self.layer24 = nn.Conv2d(32, 3, 3, padding=1)

    def forward(self, x):
        x = self.layer13(x) + x
        x = self.layer14(x) + x
        x = self.layer16(x)
        x = self.layer17(x) + x
        x = self.layer18(x) + x
        x = self.layer20(x)
        x = self.layer21(x) + x
        x = self.layer22(x) + x
        return self.layer24(x)


def _write_authors_folder(folder, levels, data_parallel=False):
    torch.manual_seed(1)
    modules = {}
    for level in range(1, levels + 1):
        for part, cls in (("encoder", AuthorsEncoder), ("decoder", AuthorsDecoder)):
            module = cls().eval()
            state = module.state_dict()
            if data_parallel:
                state = OrderedDict((f"module.{k}", v) for k, v in state.items())
            torch.save(state, folder / f"{part}_lv{level}.pkl")
            modules[part, level] = module
    return modules


@pytest.mark.parametrize("data_parallel", [False, True])
def test_authors_import_reproduces_their_modules(tmp_path, data_parallel):
    modules = _write_authors_folder(tmp_path, 4, data_parallel)
    ckpt = import_authors_checkpoint(tmp_path)
    assert ckpt.config.levels == 4 and ckpt.config.layout == "authors"
    model = ckpt.build_model()
    x = torch.rand(2, 3, 16, 24)
    with torch.no_grad():
        for level in range(1, 5):
            features = modules["encoder", level](x)
            torch.testing.assert_close(model.encoders[level - 1](x), features, rtol=0, atol=0)
            torch.testing.assert_close(model.decoders[level - 1](features), modules["decoder", level](features), rtol=0, atol=0)


def test_authors_import_counts_levels_and_rejects_strangers(tmp_path):
    _write_authors_folder(tmp_path, 2)
    assert import_authors_checkpoint(tmp_path).config.levels == 2
    with pytest.raises(CheckpointError, match="unexpected key 'layer99.weight'"):
        map_authors_state_dict({"layer99.weight": torch.zeros(1)}, "encoder", 1)
    with pytest.raises(CheckpointError, match="no encoder_lv1.pkl"):
        import_authors_checkpoint(_empty(tmp_path))
    with pytest.raises(CheckpointError, match="authors' per-level files"):
        load_checkpoint(tmp_path / "encoder_lv1.pkl")
    with pytest.raises(CheckpointError, match="import-authors"):
        load_checkpoint(tmp_path)


def _empty(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    return folder
