import sys

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from cli.deblur import app
from dmphn_core import inference
from dmphn_core.checkpoint import save_checkpoint
from dmphn_core.imageio import read_image, write_image
from dmphn_core.samples import sample_photo
from runtimes import resolve
from runtimes.compare import psnr_db
from runtimes.torch_eager import TorchRunner
from tests.conftest import random_model, trained_model

cli = CliRunner()


def _one_line_error(result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def test_demo_photo_427x640_keeps_its_size(tmp_path, make_checkpoint):
    # --runtime torch: the default (auto) would export and verify an OpenVINO IR at 428x640 first,
    # ~25 s of what this test is not about; auto through this command is run by the tests below.
    source = tmp_path / "rocket.png"
    write_image(source, sample_photo(427, 640, "rocket.jpg"))
    out = tmp_path / "sharp.png"
    result = cli.invoke(app, [str(source), "-o", str(out), "--model", str(make_checkpoint(1)), "--device", "cpu",
                              "--runtime", "torch"])
    assert result.exit_code == 0, result.output
    assert read_image(out).shape == (427, 640, 3)
    # sizes read width x height, and say so
    assert "(640x427 WxH, 8-bit RGB, padded to 640x428," in result.stdout and "deblurred 1 of 1" in result.stdout


def test_corrupt_file_among_good_ones_is_reported_and_skipped(tmp_path, make_checkpoint):
    folder = tmp_path / "in"
    folder.mkdir()
    write_image(folder / "a.png", sample_photo(48, 64, "coffee.png"))
    write_image(folder / "b.jpg", sample_photo(48, 64, "chelsea.png"))
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "out"
    result = cli.invoke(app, [str(folder), str(tmp_path / "gone.png"), "-o", str(out), "--model", str(make_checkpoint(1))])
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.strip().splitlines() if "one-time export" not in line]
    assert len(errors) == 2 and all(line.startswith("error: ") for line in errors)
    assert any("broken.png" in line for line in errors) and any("gone.png" in line for line in errors)
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]  # the jpg comes out as png
    assert read_image(out / "b.png").shape == (48, 64, 3)
    assert "deblurred 2 of 4" in result.stdout and "2 failed" in result.stdout


def test_fixed_shape_onnx_runs_in_tiles(tmp_path):
    from export.to_onnx import export_onnx

    model = random_model(1, seed=2)
    onnx_path = tmp_path / "m1_32x64.onnx"
    export_onnx(model, onnx_path, batch=1, height=32, width=64)
    image = sample_photo(61, 99, "rocket.jpg")
    source = tmp_path / "photo.png"
    write_image(source, image)
    result = cli.invoke(app, [str(source), "-o", str(tmp_path / "photo_out.png"), "--model", str(onnx_path)])
    assert result.exit_code == 0, result.output
    assert "tiles of 64x32" in result.stdout  # W x H of the artifact's 32x64 (H x W) input
    out = read_image(tmp_path / "photo_out.png")
    assert out.shape == (61, 99, 3)
    with TorchRunner(model) as runner:
        whole = inference.deblur_image(runner, read_image(source))
    # same weights; 32 px high tiles differ near their borders (measured 51.9 dB after 8-bit PNG, 2026-11-25;
    # tiles off the stride-4 grid gave 34.4 dB)
    assert psnr_db(out, whole) > 45.0


def test_bad_model_path_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where the default output folder would appear
    source = tmp_path / "x.png"
    write_image(source, np.zeros((16, 16, 3), np.float32))
    line = _one_line_error(cli.invoke(app, [str(source), "--model", str(tmp_path / "nope.pt")]))
    assert "model not found" in line
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"junk")
    line = _one_line_error(cli.invoke(app, [str(source), "--model", str(junk)]))
    assert "cannot read checkpoint" in line
    assert not (tmp_path / "deblurred").exists()


def test_a_missing_input_fails_before_any_runtime_line(tmp_path, monkeypatch):
    """Issue 28: `dmphn-deblur nonexist.png` printed `runtime: ...` (and would export) before its error."""
    monkeypatch.setenv("DMPHN_CACHE", str(tmp_path / "cache"))
    result = cli.invoke(app, [str(tmp_path / "nonexist.png")])
    assert result.exit_code == 1 and "runtime:" not in result.output
    assert result.stderr.strip() == f"error: {tmp_path / 'nonexist.png'}: no such file or folder"


def test_an_image_of_a_block_multiple_size_is_not_called_padded(tmp_path, make_checkpoint):
    """Issue 28: a 300x200 image was reported "padded to 300x200" although nothing was padded."""
    source = tmp_path / "in.png"
    write_image(source, sample_photo(200, 300, "coffee.png"))  # DMPHN-1's size block is 4x4
    result = cli.invoke(app, [str(source), "-o", str(tmp_path / "out.png"), "--model", str(make_checkpoint(1)),
                              "--runtime", "torch", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "(300x200 WxH, 8-bit RGB, whole image," in result.stdout and "padded" not in result.stdout


def test_missing_demo_checkpoint_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(resolve, "DEMO_CHECKPOINT", tmp_path / "absent.pt")
    source = tmp_path / "x.png"
    write_image(source, np.zeros((16, 16, 3), np.float32))
    line = _one_line_error(cli.invoke(app, [str(source)]))
    assert "demo checkpoint is missing" in line


@pytest.mark.parametrize("target", ["same_file", "same_folder"])
def test_never_overwrites_an_input(tmp_path, make_checkpoint, target):
    source = tmp_path / "keep.png"
    write_image(source, sample_photo(16, 16, "coffee.png"))
    before = source.read_bytes()
    output = source if target == "same_file" else tmp_path
    line = _one_line_error(cli.invoke(app, [str(source), "-o", str(output), "--model", str(make_checkpoint(1))]))
    assert "refusing to overwrite input" in line
    assert source.read_bytes() == before


def test_output_name_clashes_and_bad_outputs_are_refused(tmp_path, make_checkpoint):
    model = str(make_checkpoint(1))
    for name in ("a/x.png", "b/x.jpg"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        write_image(tmp_path / name, np.zeros((16, 16, 3), np.float32))
    inputs = [str(tmp_path / "a/x.png"), str(tmp_path / "b/x.jpg")]
    assert "both be written" in _one_line_error(cli.invoke(app, [*inputs, "-o", str(tmp_path / "o"), "--model", model]))
    assert "several inputs" in _one_line_error(cli.invoke(app, [*inputs, "-o", str(tmp_path / "o.png"), "--model", model]))
    assert "not an image format" in _one_line_error(
        cli.invoke(app, [inputs[0], "-o", str(tmp_path / "o.txt"), "--model", model])
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    result = cli.invoke(app, [str(empty), "--model", model])
    assert result.exit_code == 2 and "error: no images to deblur" in result.stderr


def test_exported_runtime_with_a_checkpoint_exports_through_the_cache(tmp_path, make_checkpoint):
    """``--runtime ort --model ckpt.pt`` used to fail inside ONNX Runtime ("Protobuf parsing failed")."""
    source = tmp_path / "x.png"
    write_image(source, sample_photo(16, 16, "coffee.png"))
    cache = tmp_path / "cache"
    result = cli.invoke(app, [str(source), "--model", str(make_checkpoint(1)), "--runtime", "ort", "--cache", str(cache),
                              "-o", str(tmp_path / "out.png")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out.png").is_file() and len(list(cache.rglob("*.onnx"))) == 1


def test_artifact_with_a_checkpoint_runtime_is_one_line(tmp_path):
    from export.to_onnx import export_onnx

    onnx_path = tmp_path / "m.onnx"
    export_onnx(random_model(1), onnx_path, batch=1, height=32, width=64)
    source = tmp_path / "x.png"
    write_image(source, np.zeros((16, 16, 3), np.float32))
    line = _one_line_error(cli.invoke(app, [str(source), "--model", str(onnx_path), "--runtime", "torch"]))
    assert "is a onnx file" in line and "leave out --runtime" in line


def test_grey_rgba_and_16_bit_inputs_keep_their_form(tmp_path, make_checkpoint):
    rng = np.random.default_rng(0)
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    grey = rng.integers(0, 256, (24, 40), dtype=np.uint8)
    bgra = rng.integers(0, 256, (24, 40, 4), dtype=np.uint8)
    deep = rng.integers(0, 65536, (24, 40, 3), dtype=np.uint16)
    for name, pixels in (("grey.png", grey), ("rgba.png", bgra), ("deep.png", deep)):
        cv2.imwrite(str(folder / name), pixels)
    result = cli.invoke(app, [str(folder), "-o", str(out), "--model", str(make_checkpoint(1))])
    assert result.exit_code == 0, result.output
    written = {name: cv2.imread(str(out / name), cv2.IMREAD_UNCHANGED) for name in ("grey.png", "rgba.png", "deep.png")}
    assert written["grey.png"].shape == (24, 40) and written["grey.png"].dtype == np.uint8
    assert written["rgba.png"].shape == (24, 40, 4)
    np.testing.assert_array_equal(written["rgba.png"][..., 3], bgra[..., 3])  # alpha untouched
    assert written["deep.png"].dtype == np.uint16 and written["deep.png"].shape == (24, 40, 3)
    assert "16-bit RGB" in result.stdout and "8-bit grey" in result.stdout and "8-bit RGBA" in result.stdout
    assert "note:" not in result.stderr


def test_a_suffix_that_cannot_keep_alpha_says_so(tmp_path, make_checkpoint):
    source = tmp_path / "rgba.png"
    cv2.imwrite(str(source), np.full((16, 32, 4), 200, np.uint8))
    result = cli.invoke(app, [str(source), "-o", str(tmp_path / "flat.jpg"), "--model", str(make_checkpoint(1))])
    assert result.exit_code == 0, result.output
    assert "note:" in result.stderr and "alpha channel dropped (.jpg has none)" in result.stderr
    assert cv2.imread(str(tmp_path / "flat.jpg"), cv2.IMREAD_UNCHANGED).shape == (16, 32, 3)


def test_help_shows_the_default_output_folder():
    result = cli.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "./deblurred/" in result.stdout


def test_model_authors_without_fetch_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("DMPHN_CACHE", str(tmp_path / "cache"))
    source = tmp_path / "in.png"
    write_image(source, sample_photo(32, 64, "coffee.png"))
    line = _one_line_error(cli.invoke(app, [str(source), "-o", str(tmp_path / "out.png"), "--model", "authors"]))
    assert "`dmphn-ckpt fetch-authors`" in line and not (tmp_path / "out.png").exists()


def test_model_authors_uses_the_cached_checkpoint(tmp_path, monkeypatch):
    from dmphn_core.authors import cached_checkpoint_path
    from dmphn_core.checkpoint import save_checkpoint

    monkeypatch.setenv("DMPHN_CACHE", str(tmp_path / "cache"))
    cached = cached_checkpoint_path("1-2-4")  # stands in for what fetch-authors writes
    cached.parent.mkdir(parents=True)
    model = random_model(3, "authors", seed=4)
    save_checkpoint(cached, model)
    source, out = tmp_path / "in.png", tmp_path / "out.png"
    write_image(source, sample_photo(32, 64, "coffee.png"))
    # --runtime torch: the alias is under test; auto would first export and verify an IR (~15 s)
    result = cli.invoke(app, [str(source), "-o", str(out), "--model", "authors-1-2-4", "--device", "cpu",
                              "--runtime", "torch"])
    assert result.exit_code == 0, result.output
    with TorchRunner(model) as runner:
        expected = inference.deblur_image(runner, read_image(source))
    assert np.abs(read_image(out) - expected).max() <= 0.5 / 255 + 1e-6


def test_progress_bar_only_on_a_terminal(monkeypatch, capsys):
    from cli.deblur import ProgressBar

    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    with ProgressBar(2) as bar:
        assert bar.progress is None
        bar.print("line one")
        bar.image_done(2.0)
    assert capsys.readouterr().out == "line one\n" and bar.done == 1

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    with ProgressBar(2) as bar:
        bar.next_image("a.png")
        bar.tiles(3, 6)
        bar.image_done(1.0)
        bar.image_done(3.0)
        tasks = {task.description: task for task in bar.progress.tasks}
        assert tasks["images"].completed == 2 and tasks["images"].fields["note"] == "2.00 s/image"
        assert tasks["tiles"].completed == 3 and tasks["tiles"].total == 6 and tasks["tiles"].visible


@pytest.mark.gpu
@pytest.mark.parametrize("runtime", ["auto", "torch", "torchscript", "aoti"])
def test_cuda_deblur_matches_the_cpu_output(tmp_path, runtime):
    """The whole CLI path on the GPU (exports through the cache where the runtime needs an artifact)
    writes the same picture as the CPU's static eager model, within one 8-bit step. Trained
    weights: a random model's output is nearly flat grey whatever the path computes."""
    source = tmp_path / "rocket.png"
    write_image(source, sample_photo(96, 128, "rocket.jpg"))
    checkpoint = str(tmp_path / "authors.pt")
    save_checkpoint(checkpoint, trained_model(4), training={"note": "the authors' GoPro weights, for a test"})
    common = ["--model", checkpoint, "--cache", str(tmp_path / "cache")]
    cpu = cli.invoke(app, [str(source), "-o", str(tmp_path / "cpu.png"), *common, "--device", "cpu", "--runtime", "torch"])
    gpu = cli.invoke(app, [str(source), "-o", str(tmp_path / "gpu.png"), *common, "--device", "cuda", "--runtime", runtime])
    assert cpu.exit_code == 0, cpu.output
    assert gpu.exit_code == 0, gpu.output
    difference = np.abs(read_image(tmp_path / "gpu.png").astype(int) - read_image(tmp_path / "cpu.png").astype(int))
    assert difference.max() <= 1, difference.max()


@pytest.mark.parametrize(("args", "message"), [
    (["--min-psnr", "40"], "--min-psnr is the quality floor of --precision auto"),
    (["--precision", "auto", "--min-psnr", "0"], "--min-psnr must be a positive number"),
])
def test_min_psnr_needs_precision_auto_and_a_positive_floor(tmp_path, make_checkpoint, args, message):
    source = tmp_path / "in.png"
    write_image(source, sample_photo(32, 64))
    result = cli.invoke(app, [str(source), "-o", str(tmp_path / "out.png"), "--model", str(make_checkpoint(1)), *args])
    assert message in _one_line_error(result)
def test_bomb_and_truncated_files_in_a_folder_fail_alone(tmp_path, make_checkpoint):
    """Issue #27 items 3, 4: a header claiming 10^10 pixels and a truncated JPEG are those files'
    errors; the good file is still deblurred; exit 1. --max-pixels above OpenCV's own limit: same."""
    from tests.dmphn_core.test_imagecheck import _png_claiming

    folder = tmp_path / "in"
    folder.mkdir()
    write_image(folder / "good.png", sample_photo(48, 64, "coffee.png"))
    (folder / "bomb.png").write_bytes(_png_claiming(100000, 100000))
    ok, jpeg = cv2.imencode(".jpg", (np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8))
    (folder / "cut.jpg").write_bytes(jpeg.tobytes()[: len(jpeg) // 2])
    for extra in ([], ["--max-pixels", str(10**11)]):
        out = tmp_path / f"out{len(extra)}"
        result = cli.invoke(app, [str(folder), "-o", str(out), "--model", str(make_checkpoint(1)), "--runtime", "torch",
                                  *extra])
        assert result.exit_code == 1, result.output
        errors = result.stderr.strip().splitlines()
        assert len(errors) == 2 and all(line.startswith("error: ") for line in errors), result.stderr
        assert any("bomb.png" in line for line in errors) and any("cut.jpg" in line and "truncated" in line for line in errors)
        assert [p.name for p in out.iterdir()] == ["good.png"] and "deblurred 1 of 3" in result.stdout


def test_model_authors_looks_in_the_given_cache(tmp_path, monkeypatch):
    """Issue #27 item 8: --cache, not $DMPHN_CACHE, holds the authors' weights, and the fetch hint keeps it."""
    from dmphn_core.authors import cached_checkpoint_path

    monkeypatch.setenv("DMPHN_CACHE", str(tmp_path / "env-cache"))
    mine = tmp_path / "my cache"
    source = tmp_path / "in.png"
    write_image(source, sample_photo(32, 64, "coffee.png"))
    args = [str(source), "-o", str(tmp_path / "out.png"), "--model", "authors-1-2-4", "--cache", str(mine), "--runtime", "torch"]
    line = _one_line_error(cli.invoke(app, args))
    assert str(mine / "authors") in line and f"`dmphn-ckpt fetch-authors --variant 1-2-4 --cache {mine}`" in line
    cached = cached_checkpoint_path("1-2-4", mine)
    cached.parent.mkdir(parents=True)
    save_checkpoint(cached, random_model(1), training={})
    result = cli.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out.png").is_file() and not (tmp_path / "env-cache").exists()
