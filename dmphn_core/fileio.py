"""Atomic writes: a file appears complete under its final name, or not at all."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import DMPHNError, exception_line


@contextlib.contextmanager
def atomic_path(destination: str | os.PathLike, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``destination``; rename it into place on success.

    On any exception the temporary file is removed and ``destination`` keeps whatever it
    held before. The temporary name keeps the destination's suffix (or ``suffix``) because
    some writers (OpenCV, torch.export) choose the format from it.
    """
    destination = Path(destination)
    parent = destination.parent if str(destination.parent) else Path(".")
    if not parent.is_dir():
        raise DMPHNError(f"cannot write {destination}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise DMPHNError(f"cannot write {destination}: folder {parent} is not writable")
    if destination.is_dir():  # say so before any expensive work, not at the final rename
        raise DMPHNError(f"cannot write {destination}: it is a folder; give a file name")
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{destination.name}.{_temp_tag()}.", suffix=suffix if suffix is not None else destination.suffix,
        dir=parent,
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.is_file():
            # mkstemp creates 0600; give the file the permissions a plain open() would have
            tmp.chmod(0o666 & ~_umask())
        os.replace(tmp, destination)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        reason = write_failure(exc, parent) if isinstance(exc, Exception) else None
        if reason is not None:
            raise DMPHNError(f"cannot write {destination}: {reason}") from exc
        raise


# Temporary names carry their writer, ".<name>.~tmp-<host>-<pid>.<random><suffix>", so that what a
# killed writer left can be told from what a live one is writing (remove_stale_temporaries).
_TEMP_NAME = re.compile(r"^\..*\.~tmp-([A-Za-z0-9_]+)-(\d+)\.")
#: a temporary this old is stale whoever wrote it (a writer on another host sharing the folder)
STALE_TEMP_AGE_S = 24 * 3600


def _host_tag() -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname()) or "host"


def _temp_tag() -> str:
    return f"~tmp-{_host_tag()}-{os.getpid()}"


def pid_alive(pid: int) -> bool:
    """True while process ``pid`` exists on this host (someone else's included)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def is_stale_temporary(path: str | os.PathLike) -> bool:
    """True for a temporary of :func:`atomic_path` whose writer is gone: a dead process on this
    host, or any writer when the file is older than :data:`STALE_TEMP_AGE_S`. A live writer's
    temporary (or any other file) is never stale."""
    match = _TEMP_NAME.match(Path(path).name)
    if match is None:
        return False
    host, pid = match.group(1), int(match.group(2))
    if host == _host_tag() and not pid_alive(pid):
        return True
    try:
        return time.time() - Path(path).stat().st_mtime > STALE_TEMP_AGE_S
    except OSError:
        return False


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the stale temporaries (:func:`is_stale_temporary`) directly in ``folder``; return them."""
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        if entry.is_file() and is_stale_temporary(entry):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


#: OS errors that are the user's situation (a full disk, a read-only folder…), not a bug.
USER_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT,
                         errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG, errno.EFBIG, errno.EIO})
_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})
# what C++ writers (torch.save, ONNX, OpenVINO) say when a write fails, without an errno
_OPAQUE_WRITE_FAILURE = ("iostream error", "basic_ios", "failed writing", "file write failed", "write failed",
                         "no space left")
#: below this many free bytes a failed write is put down to a full disk
NEARLY_FULL_BYTES = 64 << 20


def describe_os_error(exc: BaseException) -> str | None:
    """``"<reason>: <file>"`` for an OSError that is the user's situation (:data:`USER_ERRNOS`), else None."""
    if not isinstance(exc, OSError) or exc.errno not in USER_ERRNOS:
        return None
    reason = exc.strerror or os.strerror(exc.errno)
    return f"{reason}: {exc.filename}" if exc.filename else reason


def write_failure(exc: BaseException, folder: str | os.PathLike) -> str | None:
    """Why writing into ``folder`` failed, when ``exc`` is a write failure the user can fix
    (a full disk, a read-only or foreign folder); None for anything else."""
    if isinstance(exc, DMPHNError):
        return None  # already says what is wrong
    if isinstance(exc, OSError) and exc.errno in _WRITE_ERRNOS:  # others may be about another file than the one written
        return describe_os_error(exc)
    if not any(text in str(exc).lower() for text in _OPAQUE_WRITE_FAILURE):
        return None
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = None
    if free is not None and free < NEARLY_FULL_BYTES:
        return f"no space left on the device ({free >> 20} MiB free in {folder})"
    first = exception_line(exc)
    return f"the write failed ({first}); is the disk full or the folder read-only?"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(destination: str | os.PathLike, data: bytes) -> None:
    with atomic_path(destination) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(destination: str | os.PathLike, text: str) -> None:
    with atomic_path(destination) as tmp:
        tmp.write_text(text)


def finite_or_none(value: Any) -> Any:
    """``value`` with every non-finite float (inf, NaN) replaced by None, recursively.

    JSON has no Infinity or NaN; Python's json module writes them anyway as bare tokens that
    strict parsers (browsers, jq, Go, Rust) reject. An identical pair of outputs (PSNR = inf)
    is therefore written as ``null``. NumPy scalars become plain Python numbers.
    """
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # NumPy / torch scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


def strict_json(value: Any, **dumps_kwargs: Any) -> str:
    """``json.dumps`` that any parser reads: inf/NaN become null (see ``finite_or_none``)."""
    dumps_kwargs.setdefault("default", str)
    return json.dumps(finite_or_none(value), allow_nan=False, **dumps_kwargs)


#: Environment variable naming the toolkit's per-user cache folder (artifacts, the authors' files).
CACHE_ENV = "DMPHN_CACHE"


def user_cache_dir() -> Path:
    """``$DMPHN_CACHE``, else ``$XDG_CACHE_HOME/dmphn``, else ``~/.cache/dmphn``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dmphn"


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
