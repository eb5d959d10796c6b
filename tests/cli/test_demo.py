"""dmphn-demo end to end on a small crop (issue 20: a smoke test), and its picture helpers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from cli.demo import QUICK_RUNTIMES, app, comparison_picture, most_changed_window
from cli.demo_authors import PICTURE
from dmphn_core import authors
from dmphn_core.imageio import read_image
from tests.dmphn_core.test_authors import REFERENCE as REFERENCE_COPY
from tests.dmphn_core.test_authors import closed_port_url, requires_reference, serve_folder

cli = CliRunner()


def _strict_loads(text: str):
    def reject(token: str):
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=reject)


def test_demo_on_a_small_crop_verifies_every_quick_runtime(tmp_path):
    out = tmp_path / "demo"
    result = cli.invoke(app, ["-o", str(out), "--crop", "64x128", "--iters", "1", "--threads", "2"])
    assert result.exit_code == 0, result.output
    report = _strict_loads((out / "report.json").read_text())
    assert report["crop_hw"] == [64, 128] and report["size"] == [64, 128]
    assert [r["runtime"] for r in report["runtimes"]] == list(QUICK_RUNTIMES)
    assert all(r["parity"] and r["max_abs"] <= 1e-4 for r in report["runtimes"])
    # the shipped model is one level: the per-patch ratio would compare a computation with itself
    assert all(r["speedup_vs_per_patch"] is None for r in report["runtimes"])
    assert "Not timed: aoti, compile" in report["runtimes_note"]
    assert report["note"].startswith("note: the shipped DMPHN-1 is a small demo model")
    assert report["note"].endswith(": dmphn-demo --model authors") and report["note"] in result.stdout  # one line
    quality = report["quality"]
    assert quality["gain_db"] == pytest.approx(quality["deblurred_psnr_db"] - quality["blurred_psnr_db"])
    picture = read_image(out / "blurred_deblurred_sharp.png")
    # two rows (full panels + zoomed crops), three panels each, labels above
    assert picture.shape[0] > 2 * 64 and picture.shape[1] >= 3 * 128
    assert "| torchscript-cpu-fp32 |" in (out / "report.md").read_text()
    assert {p.suffix for p in out.iterdir()} >= {".png", ".json", ".md", ".onnx", ".ts"}


@pytest.mark.parametrize(("crop", "message"), [("64", "HEIGHTxWIDTH"), ("8x8", "at least 16x16"), ("999x999", "larger than")])
def test_bad_crop_is_one_line_error(tmp_path, crop, message):
    result = cli.invoke(app, ["-o", str(tmp_path / "d"), "--crop", crop, "--no-runtimes"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_most_changed_window_finds_the_changed_patch():
    before = np.zeros((40, 60, 3), np.float32)
    after = before.copy()
    after[20:30, 35:45] = 0.5  # the only change, 10x10 at (20, 35)
    assert most_changed_window(before, after, 10) == (20, 35)


def test_comparison_picture_has_labels_and_a_zoom_row():
    rng = np.random.default_rng(0)
    images = [rng.random((32, 64, 3), dtype=np.float32) for _ in range(3)]
    picture = comparison_picture(*images, labels=("a", "b", "c"))
    assert picture.shape[1] == 3 * 64 + 2 * 8
    assert picture.shape[0] > 2 * 32  # label strips + full panels + zoomed row
    assert picture.min() >= 0.0 and picture.max() <= 1.0


@requires_reference
def test_the_printed_command_shows_the_authors_model_deblurring_a_real_frame(tmp_path):
    """Issue 28: the default demo names the command that shows the real model; that command, run
    against a local mirror on a crop, fetches their weights and frame and visibly deblurs it."""
    cache = tmp_path / "cache"
    shipped = cli.invoke(app, ["-o", str(tmp_path / "small"), "--crop", "32x64", "--no-runtimes", "--runtime", "torch",
                               "--cache", str(cache)])
    assert shipped.exit_code == 0, shipped.output
    note = next(line for line in shipped.stdout.splitlines() if line.startswith("note: the shipped"))
    command = note.rsplit(": ", 1)[1].split()
    assert command[:3] == ["dmphn-demo", "--model", "authors"] and command[3:] == ["--cache", str(cache)]
    out = tmp_path / "authors"
    with serve_folder(REFERENCE_COPY) as url:  # ~20 s: serves and imports the 1-2-4-8 weights (28 MB)
        result = cli.invoke(app, [*command[1:], "--base-url", url, "--crop", "96x160", "--runtime", "torch", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "fetching the authors' DMPHN-1-2-4-8 weights" in result.stdout
    report = _strict_loads((out / "report.json").read_text())
    quality = report["quality"]
    # their blurred frame is far from their deblurred output; ours is close to it: deblurring you can see
    assert quality["ours_vs_published_psnr_db"] > quality["blurred_vs_published_psnr_db"] + 6, quality
    assert report["frame"] == "000001.png" and report["size"] == [96, 160] and authors.COMMIT[:7] in report["weights"]
    picture = read_image(out / PICTURE)
    assert picture.shape[0] > 2 * 96 and picture.shape[1] >= 3 * 160
    # a second run needs no network: weights and frame come from the cache
    again = cli.invoke(app, [*command[1:], "--base-url", closed_port_url(), "--crop", "96x160", "--runtime", "torch",
                             "-o", str(tmp_path / "again")])
    assert again.exit_code == 0, again.output
    assert "fetching" not in again.stdout


def test_authors_demo_names_a_frame_the_mirror_lacks(tmp_path):
    cache = tmp_path / "cache"
    checkpoint = authors.cached_checkpoint_path("1-2-4-8", cache)
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"")  # stands in for fetched weights: the frame is what is missing
    empty = tmp_path / "empty"
    empty.mkdir()
    with serve_folder(empty) as url:
        result = cli.invoke(app, ["--model", "authors", "--cache", str(cache), "--base-url", url, "-o", str(tmp_path / "d")])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: cannot fetch the authors' frame files (HTTP 404")
    assert "test_samples/000001.png" in result.stderr and len(result.stderr.strip().splitlines()) == 1
