"""Video pipeline: stages overlap, order and count kept, errors stop every stage, nothing half-written."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
import torch

from dmphn_core.errors import DMPHNError
from dmphn_core.inference import Deblurrer
from dmphn_core.video import VideoError, VideoInfo, VideoReader, VideoWriter, deblur_frames, run_pipeline
from runtimes.base import Runner
from tests.conftest import random_model

H, W = 32, 64


def make_clip(path, frames: int = 6, fps: float = 12.0) -> list[np.ndarray]:
    """A short clip of distinct flat frames; returns what was written (float RGB)."""
    images = [np.full((H, W, 3), (i + 1) / (frames + 2), dtype=np.float32) for i in range(frames)]
    with VideoWriter(path, VideoInfo(fps=fps, frames=frames, width=W, height=H)) as write:
        for image in images:
            write(image)
    return images


def test_stages_overlap_instead_of_running_one_after_another():
    count, delay = 8, 0.04

    def decode():
        for i in range(count):
            time.sleep(delay)
            yield np.full((2, 2, 3), i, dtype=np.float32)

    def infer(frames):
        for frame in frames:
            time.sleep(delay)
            yield frame + 100

    written = []

    def encode(frame):
        time.sleep(delay)
        written.append(int(frame[0, 0, 0]))

    begin = time.perf_counter()
    assert run_pipeline(decode(), infer, encode) == count
    wall = time.perf_counter() - begin
    assert written == [100 + i for i in range(count)]
    one_after_another = 3 * count * delay
    # overlapped: about (count + 2) * delay; sequential stages would take the whole sum
    assert wall < 0.6 * one_after_another, f"{wall:.2f} s: the stages did not overlap ({one_after_another:.2f} s summed)"


@pytest.mark.parametrize("stage", ["decode", "infer", "encode"])
def test_an_error_in_any_stage_stops_the_others_and_is_raised(stage):
    def decode():
        for i in range(100):
            if stage == "decode" and i == 3:
                raise VideoError("decode broke")
            yield np.zeros((1, 1, 3), dtype=np.float32)

    def infer(frames):
        for i, frame in enumerate(frames):
            if stage == "infer" and i == 3:
                raise DMPHNError("infer broke")
            yield frame

    def encode(frame):
        if stage == "encode":
            raise OSError("encode broke")

    with pytest.raises((DMPHNError, OSError), match=f"{stage} broke"):
        run_pipeline(decode(), infer, encode)


def test_clip_round_trip_keeps_frame_rate_count_and_pixels(tmp_path):
    path = tmp_path / "clip.avi"
    images = make_clip(path, frames=5, fps=12.0)
    reader = VideoReader(path)
    assert (reader.info.fps, reader.info.frames, reader.info.width, reader.info.height) == (12.0, 5, W, H)
    frames = list(reader)
    assert len(frames) == 5
    for got, want in zip(frames, images):
        assert abs(float(got.mean()) - float(want.mean())) < 0.03  # MJPG is lossy, flat frames survive


def test_truncated_and_junk_videos_are_video_errors(tmp_path):
    path = tmp_path / "clip.avi"
    make_clip(path, frames=6)
    data = path.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(VideoError, match="truncated|cannot be read|no frame"):
        list(VideoReader(cut))
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 20)
    with pytest.raises(VideoError, match="cannot be read as a video"):
        VideoReader(junk)


def test_writer_leaves_nothing_when_the_block_fails(tmp_path):
    path = tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt):
        with VideoWriter(path, VideoInfo(fps=10, frames=2, width=W, height=H)) as write:
            write(np.zeros((H, W, 3), dtype=np.float32))
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


class _Torch(Runner):
    """The model itself, dynamic shape, counting the inputs it gets."""

    runtime = "fake-torch"

    def __init__(self, model) -> None:
        super().__init__()
        self.model, self.calls = model, []
        self.model_config = model.config

    def _activate(self) -> None:
        pass

    def _infer(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(tuple(x.shape))
        with torch.no_grad():
            return self.model(x)


@pytest.mark.parametrize("batch", [1, 4])
def test_deblur_frames_matches_frame_by_frame_and_fills_the_last_batch(batch):
    model = random_model("1-2", seed=3)
    rng = np.random.default_rng(0)
    frames = [rng.random((H - 6, W - 10, 3), dtype=np.float32) for _ in range(5)]  # padded to the size block
    runner = _Torch(model)
    deblurrer = Deblurrer(runner)
    expected = [deblurrer.deblur(f, clamp=True) for f in frames]
    runner.calls.clear()
    outputs = list(deblur_frames(deblurrer, iter(frames), batch=batch))
    assert len(outputs) == 5
    padded = model.config.geometry.padded_size(H - 6, W - 10)
    assert padded != (H - 6, W - 10)
    assert runner.calls == [(batch, 3, *padded)] * -(-5 // batch)  # 5 frames: 5 calls of 1, or 2 of 4
    for got, want in zip(outputs, expected):
        np.testing.assert_allclose(got, want, atol=1e-4)
