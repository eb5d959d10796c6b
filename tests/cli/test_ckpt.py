import json

import torch
from typer.testing import CliRunner

from cli.ckpt import app
from dmphn_core.checkpoint import load_checkpoint, save_checkpoint
from tests.conftest import random_model
from tests.dmphn_core.test_checkpoint import _write_authors_folder

cli = CliRunner()


def test_info_prints_config_and_geometry(make_checkpoint):
    result = cli.invoke(app, ["info", str(make_checkpoint(4))])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["model"] == "DMPHN-1-2-4-8" and info["size_block_hw"] == [8, 16]
    assert info["patches_per_level"] == {"1": 1, "2": 2, "3": 4, "4": 8}
    assert info["parameters"] == sum(p.numel() for p in random_model(4).parameters())


def test_info_on_corrupt_file_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"junk")
    result = cli.invoke(app, ["info", str(bad)])
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("error: cannot read checkpoint")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_import_authors_writes_a_loadable_checkpoint(tmp_path):
    folder = tmp_path / "authors"
    folder.mkdir()
    _write_authors_folder(folder, 3)
    out = tmp_path / "imported.pt"
    result = cli.invoke(app, ["import-authors", str(folder), "-o", str(out)])
    assert result.exit_code == 0, result.output
    ckpt = load_checkpoint(out)
    assert ckpt.config.levels == 3 and ckpt.config.layout == "authors"
    reloaded = torch.load(folder / "encoder_lv2.pkl", weights_only=True)
    torch.testing.assert_close(ckpt.state_dict["encoders.1.layers.0.weight"], reloaded["layer1.weight"])


def test_import_authors_into_missing_folder_fails_cleanly(tmp_path):
    folder = tmp_path / "authors"
    folder.mkdir()
    _write_authors_folder(folder, 1)
    result = cli.invoke(app, ["import-authors", str(folder), "-o", str(tmp_path / "no" / "x.pt")])
    assert result.exit_code == 2 and "does not exist" in result.stderr


def test_existing_checkpoint_survives_a_failed_import(tmp_path):
    out = tmp_path / "keep.pt"
    save_checkpoint(out, random_model(1), training={"keep": True})
    result = cli.invoke(app, ["import-authors", str(tmp_path / "empty_dir_missing"), "-o", str(out)])
    assert result.exit_code == 2 and "not a folder" in result.stderr
    assert load_checkpoint(out).training == {"keep": True}


def test_init_and_slim_round_trip(tmp_path):
    from typer.testing import CliRunner

    from cli.ckpt import app
    from dmphn_core.checkpoint import load_checkpoint

    runner = CliRunner()
    full = tmp_path / "init.pt"
    assert runner.invoke(app, ["init", "-o", str(full), "--levels", "1-2", "--seed", "3"]).exit_code == 0
    slim = tmp_path / "slim.pt"
    result = runner.invoke(app, ["slim", str(full), "-o", str(slim)])
    assert result.exit_code == 0, result.output
    a, b = load_checkpoint(full), load_checkpoint(slim)
    assert b.config.levels == 2 and b.resume is None
    assert all(v.dtype == torch.float16 for v in b.state_dict.values())
    assert slim.stat().st_size < 0.6 * full.stat().st_size
    for key, value in a.state_dict.items():
        torch.testing.assert_close(b.state_dict[key].float(), value, rtol=1e-3, atol=1e-4)
