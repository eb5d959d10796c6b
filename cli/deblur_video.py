"""dmphn-deblur on video: ``dmphn-deblur clip.mp4 -o out.mp4``, or a folder of frames with ``-o out.mp4 --fps 30``.

Thin over :mod:`dmphn_core.video` (decode, deblur and encode overlap; temp + rename). The runner
is put in throughput mode first, so OpenVINO / ONNX Runtime keep several frames in flight.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from cli.common import DEFAULT_OUTPUT_FOLDER
from dmphn_core.errors import DMPHNError
from dmphn_core.inference import Deblurrer
from dmphn_core.video import VideoReader, VideoWriter, deblur_frames, folder_frames, is_video, run_pipeline
from runtimes.base import Runner


def is_video_job(inputs: list[Path], output: Path | None) -> bool:
    """One video file in, or a video file name out."""
    return (len(inputs) == 1 and inputs[0].is_file() and is_video(inputs[0])) or (output is not None and is_video(output))


class FrameProgress:
    """Frames done and frames/s on a terminal (stderr); nothing when it is not a TTY."""

    def __init__(self, total: int | None) -> None:
        self.progress = None
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self.progress = Progress(TextColumn("frames"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[rate]}"), console=Console(stderr=True), transient=True)
            self.task = self.progress.add_task("frames", total=total or None, rate="")
        self.begin = time.perf_counter()
        #: when the first and the latest frame were written (steady rate: without model loading)
        self.first_at: float | None = None
        self.last_at: float | None = None

    def steady_rate(self, done: int) -> float | None:
        """Frames/s from the first frame written to the last (None under two frames)."""
        if done < 2 or self.first_at is None or self.last_at is None or self.last_at <= self.first_at:
            return None
        return (done - 1) / (self.last_at - self.first_at)

    def __enter__(self) -> "FrameProgress":
        if self.progress is not None:
            self.progress.__enter__()
        self.begin = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def update(self, done: int) -> None:
        self.last_at = time.perf_counter()
        self.first_at = self.first_at or self.last_at
        if self.progress is not None:
            rate = done / max(time.perf_counter() - self.begin, 1e-9)
            self.progress.update(self.task, completed=done, rate=f"{rate:.2f} frames/s")


def deblur_video(inputs: list[Path], output: Path | None, runner: Runner, *, fps: float | None, batch: int,
                 tile: int | None, overlap: int, streams: int | None = None) -> None:
    """Deblur one video (or one folder of frames) into one video file, keeping frame rate and count."""
    if len(inputs) != 1:
        raise DMPHNError("a video job takes one input: a video file, or a folder of frames with --fps")
    source = inputs[0]
    if source.is_dir():
        if fps is None:
            raise DMPHNError(f"{source} is a folder of frames: give its frame rate with --fps to make a video")
        if output is None or not is_video(output):
            raise DMPHNError("a folder of frames becomes a video with -o NAME.mp4 (or .avi, .mkv, .mov)")
        info, frames = folder_frames(source, fps)
    else:
        reader = VideoReader(source)
        info, frames = reader.info, iter(reader)
        if fps is not None:
            info = type(info)(fps=fps, frames=info.frames, width=info.width, height=info.height)
    output = output or DEFAULT_OUTPUT_FOLDER / source.name
    if output.resolve() == source.resolve():
        raise DMPHNError(f"refusing to overwrite input {source} with its output; choose another -o")
    output.parent.mkdir(parents=True, exist_ok=True)
    runner.prefer_throughput(streams)
    begin = time.perf_counter()
    with runner, FrameProgress(info.frames) as bar, VideoWriter(output, info) as write:
        deblurrer = Deblurrer(runner, tile=tile, overlap=overlap)
        written = run_pipeline(frames, lambda stream: deblur_frames(deblurrer, stream, batch=batch), write,
                               on_frame=bar.update)
        used = runner.concurrency()
    seconds = time.perf_counter() - begin
    steady = bar.steady_rate(written)
    steady_text = f" ({steady:.2f} frames/s from the first frame out to the last)" if steady else ""
    print(f"{source} -> {output}: {written} frames, {info.width}x{info.height} WxH at {info.fps:g} fps, "
          f"{seconds:.1f} s with model loading, {written / seconds:.2f} frames/s{steady_text}; {runner.name} "
          f"({used.get('streams')} stream(s), {used.get('requests')} in flight, batch {batch})")
