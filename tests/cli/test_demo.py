"""dmphn-demo end to end on a small crop (issue 20: a smoke test), and its picture helpers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from cli.demo import QUICK_RUNTIMES, app, comparison_picture, most_changed_window
from dmphn_core.imageio import read_image

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
    assert report["note"].startswith("note: the shipped DMPHN-1") and "import-authors" in report["note"]
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
