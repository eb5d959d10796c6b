"""Video in, video out: decode, deblur and encode overlap in three stages joined by bounded queues.

* **decode** (a thread): frames from a video file (OpenCV's ``VideoCapture``, FFmpeg inside) or
  from a folder of images, as float32 RGB (H, W, 3) in [0, 1];
* **deblur** (the calling thread): :func:`deblur_frames` pads each frame to the model's size
  block and hands it to the runner's :meth:`infer_stream`, which keeps as many frames in flight
  as the runtime wants (OpenVINO's asynchronous requests, ONNX Runtime's parallel sessions);
  ``batch`` > 1 groups frames for runtimes that gain from a batch (torch);
* **encode** (a thread): OpenCV's ``VideoWriter`` into a temporary file beside the output, renamed
  into place only when every frame is written (Ctrl-C or an error leaves nothing half-written).

Each queue holds a few frames, so memory stays bounded whatever the video's length. Frame
rate and frame count are kept. OpenCV rather than PyAV: it is already a dependency, and it
reads and writes what this job needs (MP4 ``mp4v``, AVI ``MJPG``); it cannot carry the audio
stream over (PyAV could remux it; docs/throughput.md).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np
import torch

from .errors import DMPHNError
from .fileio import atomic_path
from .geometry import pad_to_block
from .imageio import list_images, read_image

#: containers written and read here, with the codec OpenCV's FFmpeg writes into each
FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG"}
VIDEO_SUFFIXES = tuple(FOURCC)
#: frames each queue between two stages holds
QUEUE_FRAMES = 4
#: how often a stage blocked on a full or empty queue looks whether another stage has stopped
POLL_S = 0.1


class VideoError(DMPHNError):
    """A video that cannot be read or written (corrupt, truncated, unknown container)."""


def is_video(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


@dataclass(frozen=True)
class VideoInfo:
    fps: float
    #: frames the container declares (0: unknown, e.g. a folder is counted, a stream may not say)
    frames: int
    width: int
    height: int


def _quiet_ffmpeg() -> None:
    # FFmpeg prints its own lines ("moov atom not found") for a broken file; the error line here says it once
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


class VideoReader:
    """Frames of a video file as float32 RGB (H, W, 3) in [0, 1]; opened (and checked) on construction."""

    def __init__(self, path: str | os.PathLike) -> None:
        import cv2

        _quiet_ffmpeg()
        self.path = Path(path)
        if not self.path.is_file():
            raise VideoError(f"{self.path}: no such video file")
        self._capture = cv2.VideoCapture(str(self.path))
        if not self._capture.isOpened():
            raise VideoError(f"{self.path} cannot be read as a video (corrupt, truncated, or not a video)")
        ok, first = self._capture.read()
        if not ok or first is None:
            self._capture.release()
            raise VideoError(f"{self.path} has no frame that can be decoded (corrupt or truncated)")
        self._first = first
        fps = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0)
        declared = int(max(0.0, self._capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0))
        self.info = VideoInfo(fps=fps if fps > 0 else 0.0, frames=declared, width=first.shape[1], height=first.shape[0])

    def __iter__(self) -> Iterator[np.ndarray]:
        import cv2

        count = 0
        frame = self._first
        try:
            while frame is not None:
                count += 1
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
                ok, frame = self._capture.read()
                frame = frame if ok else None
        finally:
            self._capture.release()
        if self.info.frames and count < self.info.frames:
            raise VideoError(f"{self.path} is truncated or corrupt: decoded {count} of the {self.info.frames} "
                             "frames its container declares")


def folder_frames(folder: str | os.PathLike, fps: float) -> tuple[VideoInfo, Iterator[np.ndarray]]:
    """The images of ``folder`` in name order as frames of a video at ``fps``; all must be one size."""
    files = list_images(folder)
    if not files:
        raise VideoError(f"no images in folder {folder} to make a video of")
    if not fps > 0:
        raise VideoError(f"--fps must be positive, got {fps}")
    first = read_image(files[0])
    height, width = first.shape[:2]

    def frames() -> Iterator[np.ndarray]:
        yield first
        for file in files[1:]:
            image = read_image(file)
            if image.shape[:2] != (height, width):
                raise VideoError(f"{file} is {image.shape[1]}x{image.shape[0]}, the first frame {width}x{height}; "
                                 "a video has one frame size")
            yield image

    return VideoInfo(fps=fps, frames=len(files), width=width, height=height), frames()


class _Stopped(Exception):
    """Another stage failed or the run was interrupted: this one stops quietly."""


def _put(q: queue.Queue, item: object, stop: threading.Event) -> None:
    while True:
        if stop.is_set():
            raise _Stopped
        try:
            q.put(item, timeout=POLL_S)
            return
        except queue.Full:
            continue


def _drain(q: queue.Queue, stop: threading.Event) -> Iterator[object]:
    """Items of ``q`` up to the end marker (None)."""
    while True:
        if stop.is_set():
            raise _Stopped
        try:
            item = q.get(timeout=POLL_S)
        except queue.Empty:
            continue
        if item is None:
            return
        yield item


def run_pipeline(
    frames: Iterable[np.ndarray],
    transform: Callable[[Iterator[np.ndarray]], Iterator[np.ndarray]],
    write: Callable[[np.ndarray], None],
    *,
    queue_frames: int = QUEUE_FRAMES,
    on_frame: Callable[[int], None] | None = None,
) -> int:
    """Decode (``frames``, a thread) -> ``transform`` (this thread) -> ``write`` (a thread); returns frames written.

    The stages overlap: while frame i is transformed, frame i+1 is decoded and frame i-1 encoded.
    The first error of any stage (or Ctrl-C here) stops the others and is raised here.
    ``on_frame(count)`` is called from the encode thread after each frame written.
    """
    decoded: queue.Queue = queue.Queue(queue_frames)
    results: queue.Queue = queue.Queue(queue_frames)
    stop = threading.Event()
    errors: list[BaseException] = []
    written = [0]

    def decode() -> None:
        try:
            for frame in frames:
                _put(decoded, frame, stop)
            _put(decoded, None, stop)
        except _Stopped:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            errors.append(exc)
            stop.set()

    def encode() -> None:
        try:
            for frame in _drain(results, stop):
                write(frame)
                written[0] += 1
                if on_frame is not None:
                    on_frame(written[0])
        except _Stopped:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=decode, name="video-decode", daemon=True),
               threading.Thread(target=encode, name="video-encode", daemon=True)]
    for thread in threads:
        thread.start()
    finished = False
    try:
        for result in transform(_drain(decoded, stop)):
            _put(results, result, stop)
        _put(results, None, stop)
        finished = True
    except _Stopped:  # a thread failed: its error is raised below
        pass
    finally:
        if not finished:  # an error or Ctrl-C here: the threads stop at their next queue operation
            stop.set()
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
    return written[0]


def deblur_frames(deblurrer, frames: Iterator[np.ndarray], *, batch: int = 1) -> Iterator[np.ndarray]:
    """Deblur float RGB frames of one size, in order, through the runner's own concurrency.

    ``deblurrer``: a :class:`dmphn_core.inference.Deblurrer`. Where one padded frame is one runner
    input (no tiles), frames go through ``runner.infer_stream`` ``batch`` at a time (the last
    batch is filled with repeats, their outputs dropped); tiled frames run one after another.
    """
    if batch < 1:
        raise DMPHNError(f"batch must be at least 1, got {batch}")
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        return
    height, width = first.shape[:2]
    geometry = deblurrer.geometry
    plan = deblurrer.plan(height, width)
    streamed = plan.is_whole and geometry is not None and plan.padded_hw == geometry.padded_size(height, width)
    if not streamed:
        for frame in chain([first], frames):
            yield deblurrer.deblur(_same_size(frame, height, width), clamp=True)
        return
    counts: list[int] = []

    def inputs() -> Iterator[np.ndarray]:
        group: list[torch.Tensor] = []
        for frame in chain([first], frames):
            x = torch.from_numpy(np.ascontiguousarray(_same_size(frame, height, width).transpose(2, 0, 1)))
            group.append(pad_to_block(x[None].float(), geometry)[0])
            if len(group) == batch:
                counts.append(batch)
                yield torch.cat(group).numpy()
                group = []
        if group:
            counts.append(len(group))
            yield torch.cat(group + [group[-1]] * (batch - len(group))).numpy()

    for index, out in enumerate(deblurrer.runner.infer_stream(inputs())):
        out = np.asarray(out)
        if not np.isfinite(out).all():
            raise DMPHNError(f"{deblurrer.runner.name} produced NaN or Inf")
        for item in out[: counts[index]]:
            yield np.clip(item[:, :height, :width], 0.0, 1.0).transpose(1, 2, 0)


def _same_size(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    if frame.shape[:2] != (height, width):
        raise VideoError(f"frame size changed from {width}x{height} to {frame.shape[1]}x{frame.shape[0]}")
    return frame


class VideoWriter:
    """``with VideoWriter(path, info) as write: write(frame)``; the file appears only when the block succeeds."""

    def __init__(self, path: str | os.PathLike, info: VideoInfo) -> None:
        self.path = Path(path)
        if not is_video(self.path):
            raise VideoError(f"-o {self.path}: not a video name; use one of {', '.join(VIDEO_SUFFIXES)}")
        if not info.fps > 0:
            raise VideoError("cannot tell the frame rate of the input; give --fps")
        self.info = info

    def __enter__(self) -> Callable[[np.ndarray], None]:
        import cv2

        _quiet_ffmpeg()
        self._atomic = atomic_path(self.path)
        tmp = self._atomic.__enter__()
        fourcc = cv2.VideoWriter_fourcc(*FOURCC[self.path.suffix.lower()])
        self._writer = cv2.VideoWriter(str(tmp), fourcc, self.info.fps, (self.info.width, self.info.height))
        if not self._writer.isOpened():
            self._atomic.__exit__(VideoError, None, None)
            raise VideoError(f"OpenCV cannot write {self.path.suffix} video here")

        def write(frame: np.ndarray) -> None:
            pixels = np.clip(frame * 255.0 + 0.5, 0, 255).astype(np.uint8)
            self._writer.write(cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))

        return write

    def __exit__(self, *exc_info) -> bool | None:
        self._writer.release()  # before the rename (or the removal): the container is finished
        return self._atomic.__exit__(*exc_info)
