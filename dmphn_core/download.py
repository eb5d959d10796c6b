"""Verified downloads: a file is kept only when its sha256 is the expected one, within time limits.

:class:`DownloadLimits` bounds a fetch three ways: a read that waits longer than ``timeout``, the
whole fetch past ``deadline_s``, and a trickle below ``min_rate`` bytes/s over ``window_s`` (which
no per-read timeout catches). On a terminal each file shows a progress bar (stderr).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DMPHNError
from .fileio import file_sha256

DEFAULT_TIMEOUT_S = 30.0
#: A whole fetch (every file) must finish within this many seconds (``--deadline``).
DEFAULT_DEADLINE_S = 1800.0
#: A download slower than this (bytes/s, averaged over :data:`STALL_WINDOW_S`) is stalled (``--min-rate``).
DEFAULT_MIN_RATE = 8 * 1024
STALL_WINDOW_S = 30.0
_CHUNK = 1 << 16


def base_url_of(base_url: str) -> str:
    """A folder path (an air-gapped copy) becomes a file:// URL; URLs lose a trailing slash."""
    if "://" not in base_url:
        folder = Path(base_url).expanduser()
        if not folder.is_dir():
            raise DMPHNError(f"--base-url {base_url} is neither a URL nor a folder")
        return folder.resolve().as_uri()
    return base_url.rstrip("/")


@dataclass
class DownloadLimits:
    """When a download gives up: no byte for ``timeout`` s (one read), the whole fetch past
    ``deadline_s``, or fewer than ``min_rate`` bytes/s over the last ``window_s`` (a trickle that
    never trips the read timeout). ``start`` is when the deadline's clock started."""

    timeout: float = DEFAULT_TIMEOUT_S
    deadline_s: float = DEFAULT_DEADLINE_S
    min_rate: float = DEFAULT_MIN_RATE
    window_s: float = STALL_WINDOW_S
    start: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        for name in ("timeout", "deadline_s", "window_s"):
            if getattr(self, name) <= 0:
                raise DMPHNError(f"download {name.removesuffix('_s')} must be positive, got {getattr(self, name)}")
        if self.min_rate < 0:
            raise DMPHNError(f"download minimum rate must be >= 0, got {self.min_rate}")

    def check(self, url: str, history: list[tuple[float, int]]) -> None:
        """Raise DMPHNError when past the deadline or stalled; ``history``: ``(time, total bytes)`` per read."""
        now = time.monotonic()
        if now - self.start > self.deadline_s:
            raise DMPHNError(f"cannot download {url}: not finished within the deadline of {self.deadline_s:g} s "
                             "(--deadline raises it)")
        if now - history[0][0] < self.window_s:
            return  # not yet a whole window of evidence
        while len(history) > 1 and now - history[1][0] >= self.window_s:
            history.pop(0)  # keep the oldest sample at least one window old
        then, received_then = history[0]
        rate = (history[-1][1] - received_then) / max(now - then, 1e-9)
        if rate < self.min_rate:
            raise DMPHNError(f"cannot download {url}: stalled at {rate / 1024:.1f} KiB/s over the last {now - then:.0f} s "
                             f"(minimum {self.min_rate / 1024:g} KiB/s; --min-rate changes it)")


def download_verified(
    url: str,
    destination: Path,
    sha256: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    limits: DownloadLimits | None = None,
    on_bytes: Callable[[int, int | None], None] | None = None,
) -> None:
    """Download ``url`` into ``destination`` only if its sha256 is ``sha256``; nothing is left otherwise.

    ``limits`` (default: ``DownloadLimits(timeout)`` from now) bounds the time; ``on_bytes(received,
    total)`` is called per chunk (total None when the server does not say).
    """
    limits = limits or DownloadLimits(timeout=timeout)
    timeout = limits.timeout
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{destination.name}.", suffix=".part", dir=destination.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, _open_url(url, timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            received = 0
            history = [(time.monotonic(), 0)]
            while True:
                try:
                    # read1: what has arrived (one read), so that a trickle is seen, not waited out
                    chunk = response.read1(_CHUNK)
                except TimeoutError:
                    raise DMPHNError(f"cannot download {url}: timed out after {timeout:g} s with no data") from None
                if not chunk:
                    break
                received += len(chunk)
                history.append((time.monotonic(), received))
                digest.update(chunk)
                out.write(chunk)
                if on_bytes is not None:
                    on_bytes(len(chunk), total)
                limits.check(url, history)
        if digest.hexdigest() != sha256:
            raise DMPHNError(
                f"checksum mismatch for {url}: sha256 {digest.hexdigest()[:16]}…, expected {sha256[:16]}… "
                "; the file was not kept"
            )
        tmp.chmod(0o644)
        os.replace(tmp, destination)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _open_url(url: str, timeout: float) -> Iterator[Any]:
    """urlopen with every failure turned into one DMPHNError line."""
    request = urllib.request.Request(url, headers={"User-Agent": "dmphn-deploy"})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()  # it holds the response: close its socket now, not whenever it is garbage-collected
        raise DMPHNError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            raise DMPHNError(f"cannot download {url}: timed out after {timeout:g} s") from None
        text = getattr(reason, "strerror", None) or str(reason)
        raise DMPHNError(f"cannot download {url}: {text} (no network? --base-url takes a mirror or a local copy)") from None
    except TimeoutError:
        raise DMPHNError(f"cannot download {url}: timed out after {timeout:g} s") from None
    except (OSError, ValueError) as exc:
        raise DMPHNError(f"cannot download {url}: {exc}") from None
    with response:
        yield response


@contextlib.contextmanager
def _progress_bar(enabled: bool, total_files: int) -> Iterator[Callable[[str], Callable[[int, int | None], None]]]:
    """``start(name) -> on_bytes``: a rich bar per file on a terminal, silence elsewhere."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    console = Console(stderr=True)
    if not (enabled and console.is_terminal):
        yield lambda name: (lambda received, total: None)
        return
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        counter = iter(range(1, total_files + 1))

        def start(name: str) -> Callable[[int, int | None], None]:
            task = progress.add_task(f"[{next(counter, total_files)}/{total_files}] {name}", total=None)

            def on_bytes(received: int, total: int | None) -> None:
                progress.update(task, advance=received, total=total)

            return on_bytes

        yield start


def fetch_files(
    files: dict[str, str],
    base_url: str,
    root: str | os.PathLike,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    limits: DownloadLimits | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    missing: dict[str, str] | None = None,
) -> list[Path]:
    """Make ``root/<relative path>`` hold each of ``files`` with its sha256; download what is missing.

    A file already there with the right hash is kept (no network); one with a wrong hash is
    downloaded again. The first failure raises (files completed before it stay, verified), unless
    ``missing`` collects them (``{relative path: reason}``) and the rest are still fetched.
    Returns the paths now there.
    """
    root, base = Path(root), base_url_of(base_url)
    limits = limits or DownloadLimits(timeout=timeout)
    todo = []
    for relative, digest in sorted(files.items()):
        path = root / relative
        if path.is_file() and file_sha256(path) == digest:
            continue
        todo.append((relative, digest))
    with _progress_bar(progress, len(todo)) as start:
        for relative, digest in todo:
            try:
                download_verified(f"{base}/{relative}", root / relative, digest, limits=limits, on_bytes=start(relative))
            except DMPHNError as exc:
                if missing is None:
                    raise
                missing[relative] = str(exc).removeprefix(f"cannot download {base}/{relative}: ")
                continue
            if log is not None:
                log(f"downloaded {relative} (sha256 ok)")
    return [root / relative for relative in sorted(files) if relative not in (missing or {})]




__all__ = ["DEFAULT_DEADLINE_S", "DEFAULT_MIN_RATE", "DEFAULT_TIMEOUT_S", "DownloadLimits", "base_url_of",
           "download_verified", "fetch_files"]
