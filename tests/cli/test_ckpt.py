import hashlib
import json

import torch
from typer.testing import CliRunner

from cli.ckpt import app
from dmphn_core import authors
from dmphn_core.checkpoint import load_checkpoint, save_checkpoint
from dmphn_core.fileio import file_sha256
from tests.conftest import random_model
from tests.dmphn_core.test_authors import REFERENCE, closed_port_url, requires_reference, serve_folder
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


# -- fetch-authors (served from 127.0.0.1; never the internet) ---------------------------


@requires_reference
def test_fetch_authors_from_a_local_server_matches_import_authors_bit_for_bit(tmp_path):
    # ~15 s: serves, hashes, imports and saves the 1-2-4-8 weights twice
    fetched, imported, cache = tmp_path / "a.pt", tmp_path / "b.pt", tmp_path / "cache"
    with serve_folder(REFERENCE) as url:
        result = cli.invoke(app, ["fetch-authors", "--base-url", url, "--cache", str(cache), "-o", str(fetched)])
    assert result.exit_code == 0, result.output
    assert "sha256 of every file ok" in result.stdout and authors.COMMIT[:7] in result.stdout
    result = cli.invoke(app, ["import-authors", str(REFERENCE / "checkpoints" / "DMPHN_1_2_4_8"), "-o", str(imported)])
    assert result.exit_code == 0, result.output
    a, b = load_checkpoint(fetched), load_checkpoint(imported)
    assert a.config == b.config and a.config.name == "DMPHN-1-2-4-8"
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in b.state_dict)
    x = torch.rand(1, 3, 32, 64, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert torch.equal(a.build_model()(x), b.build_model()(x))
    # both name the authors' weights, so reports can say what ran
    assert a.training["authors"]["label"] == b.training["authors"]["label"] == authors.weights_label("1-2-4-8")
    # a second call needs no network: the server is gone
    again = cli.invoke(app, ["fetch-authors", "--base-url", closed_port_url(), "--cache", str(cache)])
    assert again.exit_code == 0, again.output


@requires_reference
def test_fetch_authors_refuses_a_tampered_file(tmp_path):
    served, cache, out = tmp_path / "served", tmp_path / "cache", tmp_path / "a.pt"
    folder = served / "checkpoints" / "DMPHN_1_2_4"
    folder.mkdir(parents=True)
    for source in (REFERENCE / "checkpoints" / "DMPHN_1_2_4").iterdir():
        (folder / source.name).write_bytes(source.read_bytes())
    data = bytearray((folder / "decoder_lv2.pkl").read_bytes())
    data[len(data) // 2] ^= 1  # one flipped bit
    (folder / "decoder_lv2.pkl").write_bytes(bytes(data))
    with serve_folder(served) as url:
        result = cli.invoke(app, ["fetch-authors", "--variant", "1-2-4", "--base-url", url, "--cache", str(cache), "-o", str(out)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: checksum mismatch") and "decoder_lv2.pkl" in lines[0]
    assert not out.exists()
    left = sorted(p for p in cache.rglob("*") if p.is_file())
    assert left and all(file_sha256(p) == authors.read_manifest()[p.relative_to(authors.mirror_dir(cache)).as_posix()] for p in left)


def test_fetch_authors_without_network_is_one_line(tmp_path):
    out = tmp_path / "a.pt"
    result = cli.invoke(app, ["fetch-authors", "--base-url", closed_port_url(), "--cache", str(tmp_path / "c"), "-o", str(out)])
    assert result.exit_code == 2 and not out.exists()
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot download http://127.0.0.1:")
    assert "Traceback" not in result.output


def _fake_mirror(served, tmp_path, monkeypatch, *, listed_frames, served_frames):
    """A mirror of random 1-2-4 weights and small frame files, and a manifest (patched in) that
    lists ``listed_frames``; only ``served_frames`` are on the server."""
    folder = served / "checkpoints" / "DMPHN_1_2_4"
    folder.mkdir(parents=True)
    _write_authors_folder(folder, 3)
    manifest = {f"checkpoints/DMPHN_1_2_4/{p.name}": file_sha256(p) for p in folder.iterdir()}
    for name in listed_frames:
        data = f"frame {name}".encode()
        if name in served_frames:
            (served / name).parent.mkdir(parents=True, exist_ok=True)
            (served / name).write_bytes(data)
        manifest[name] = hashlib.sha256(data).hexdigest()
    path = tmp_path / "manifest.sha256"
    path.write_text("".join(f"{digest}  {relative}\n" for relative, digest in manifest.items()))
    monkeypatch.setattr(authors, "MANIFEST", path)


def test_fetch_authors_frames_keeps_the_weights_and_names_a_missing_frame(tmp_path, monkeypatch):
    """Issue 28: weights and frames are separate steps; a frame the mirror lacks is named, the rest stays usable."""
    served, cache, frames, out = tmp_path / "served", tmp_path / "cache", tmp_path / "gopro", tmp_path / "a.pt"
    listed = ["test_samples/000001.png", "test_samples/000002.png", "test_results/DMPHN_1_2_4_test_res/000001.png"]
    _fake_mirror(served, tmp_path, monkeypatch, listed_frames=listed, served_frames=[listed[0], listed[2]])
    with serve_folder(served) as url:
        result = cli.invoke(app, ["fetch-authors", "--variant", "1-2-4", "--base-url", url, "--cache", str(cache),
                                  "-o", str(out), "--frames", str(frames)])
    assert result.exit_code == 2, result.output
    # the weights were written as soon as they were verified, before the frames were tried
    assert load_checkpoint(out).config.name == "DMPHN-1-2-4" and authors.cached_checkpoint_path("1-2-4", cache).is_file()
    assert "sha256 of every file ok" in result.stdout and "2 of 3 files" in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: 1 frame file(s)") and "test_samples/000002.png" in lines[0]
    assert "HTTP 404" in lines[0] and "000001.png" not in lines[0]
    # what was fetched is there, verified, and nothing partial is left
    assert sorted(p.relative_to(frames).as_posix() for p in frames.rglob("*") if p.is_file()) == sorted([listed[0], listed[2]])
    # a second run with the whole mirror needs only the missing file
    (served / listed[1]).write_bytes(b"frame test_samples/000002.png")
    with serve_folder(served) as url:
        again = cli.invoke(app, ["fetch-authors", "--variant", "1-2-4", "--base-url", url, "--cache", str(cache), "--frames", str(frames)])
    assert again.exit_code == 0, again.output
    assert "3 of 3 files" in again.stdout and (frames / listed[1]).is_file()
