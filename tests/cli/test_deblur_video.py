"""dmphn-deblur on video: clip in -> clip out with frame rate and count kept; frames folder -> video; bad input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from cli.deblur import app
from dmphn_core.imageio import write_image
from dmphn_core.video import VideoReader
from tests.cli.test_deblur import _one_line_error
from tests.dmphn_core.test_video import H, W, make_clip

cli = CliRunner()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from dmphn_core.checkpoint import save_checkpoint
    from tests.conftest import random_model

    path = tmp_path_factory.mktemp("video") / "model.pt"
    save_checkpoint(path, random_model(1, seed=2))
    return path


def _run(args, checkpoint):
    return cli.invoke(app, [*args, "--model", str(checkpoint), "--runtime", "torch", "--device", "cpu"])


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_clip_in_clip_out_keeps_frame_rate_and_count(tmp_path, checkpoint, suffix):
    clip = tmp_path / "clip.avi"
    make_clip(clip, frames=7, fps=15.0)
    out = tmp_path / f"out{suffix}"
    result = _run([str(clip), "-o", str(out), "--batch", "2"], checkpoint)
    assert result.exit_code == 0, result.output
    assert "7 frames" in result.output and "frames/s" in result.output
    reader = VideoReader(out)
    assert reader.info.fps == 15.0 and (reader.info.width, reader.info.height) == (W, H)
    assert len(list(reader)) == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["clip.avi", out.name])  # no temporary left


def test_folder_of_frames_becomes_a_video_with_fps(tmp_path, checkpoint):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(4):
        write_image(folder / f"{i:03d}.png", np.full((H, W, 3), i / 4, dtype=np.float32))
    out = tmp_path / "out.avi"
    line = _one_line_error(_run([str(folder), "-o", str(out)], checkpoint))
    assert "--fps" in line and not out.exists()
    result = _run([str(folder), "-o", str(out), "--fps", "24"], checkpoint)
    assert result.exit_code == 0, result.output
    capture = cv2.VideoCapture(str(out))
    assert capture.get(cv2.CAP_PROP_FPS) == 24.0 and capture.get(cv2.CAP_PROP_FRAME_COUNT) == 4


def test_corrupt_or_truncated_video_is_one_error_line_and_no_output(tmp_path, checkpoint):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    out = tmp_path / "out.mp4"
    line = _one_line_error(_run([str(junk), "-o", str(out)], checkpoint))
    assert "junk.mp4" in line
    clip = tmp_path / "clip.avi"
    make_clip(clip, frames=8)
    data = clip.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    line = _one_line_error(_run([str(cut), "-o", str(out)], checkpoint))
    assert "cut.avi" in line
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]
