"""Nothing a tritonserver started here leaves behind outlives its owner, even after ``kill -9``.

A server started by :class:`runtimes.triton_server.TritonServer` owns three kinds of things:
processes (``tritonserver`` and its ``triton_python_backend_stub`` children, which ignore
SIGTERM and are not killed with their parent), ``/dev/shm`` regions, and a temporary folder.
All of them carry the owner's PID in their names or command lines: the regions are
``/dev/shm/dmphn<PID>_…`` (the Python backend's ``shm-region-prefix-name``, which the stubs also
get on their command line) and the folder is ``dmphn-triton-<PID>-…`` (tritonserver's
``--backend-directory`` lies inside it).

Two layers of cleanup:

* :func:`start_watchdog`: a small process (this file run as a script; stdlib and
  :mod:`dmphn_core.fileio` only) that waits on
  a pipe from the owner. When the pipe closes (the owner stopped, crashed or was SIGKILLed), it
  kills every process whose command line names the owner's markers and removes the regions
  and the folder.
* :func:`reap_leftovers`: at the next start, whatever an owner that no longer runs left (the
  watchdog killed too, a power cut) is removed the same way. An owner that still runs keeps
  everything: things are only ever removed for a dead owner PID.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __name__ == "__main__":  # run as the watchdog script (-I): dmphn_core lies beside runtimes/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dmphn_core.fileio import pid_alive  # noqa: E402 - after the path set-up above

SHM_DIR = Path("/dev/shm")
#: Prefix of the /dev/shm regions and marker on the stubs' command lines: ``dmphn<owner PID>_``.
SHM_TAG = re.compile(r"dmphn(\d+)_")
WORKDIR_TAG = re.compile(r"^dmphn-triton-(\d+)-")


def shm_prefix(token: str) -> str:
    """The shm region prefix of a server owned by this process (``token`` tells servers apart)."""
    return f"dmphn{os.getpid()}_{token}_"


def workdir_prefix() -> str:
    return f"dmphn-triton-{os.getpid()}-"


def _own_processes() -> list[tuple[int, str]]:
    """``(pid, command line)`` of this user's processes (Linux /proc), this one excluded."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if entry.stat().st_uid != os.getuid():
                continue
            found.append((int(entry.name), (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")))
        except OSError:  # it exited meanwhile
            continue
    return found


#: The programs a server consists of; nothing else is ever killed (a `tail -f` of its log, say).
SERVER_PROGRAMS = ("tritonserver", "triton_python_backend_stub")


def kill_processes_naming(markers: list[str]) -> list[int]:
    """SIGKILL this user's tritonserver / stub processes whose command line contains one of
    ``markers``; return their PIDs."""
    killed = []
    for pid, command in _own_processes():
        program = os.path.basename(command.split(" ", 1)[0])
        if program in SERVER_PROGRAMS and any(marker in command for marker in markers):
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
    return killed


def remove_owned_files(shm_prefix_: str, workdir: str | os.PathLike | None) -> None:
    for region in SHM_DIR.glob(shm_prefix_ + "*"):
        region.unlink(missing_ok=True)
    if workdir is not None:
        shutil.rmtree(workdir, ignore_errors=True)


def reap_leftovers() -> list[str]:
    """Remove what servers of owners that no longer run left: processes, shm regions, folders.

    Returns one line per thing removed. Things of a live owner (this process included) stay.
    """
    removed: list[str] = []
    dead_owners = {int(pid) for _, command in _own_processes() for pid in SHM_TAG.findall(command)}
    dead_owners |= {int(m.group(1)) for p in SHM_DIR.glob("dmphn*_*") if (m := SHM_TAG.match(p.name))}
    dead_owners = {pid for pid in dead_owners if not pid_alive(pid)}
    if dead_owners:
        for pid in kill_processes_naming([f"dmphn{owner}_" for owner in dead_owners]):
            removed.append(f"process {pid}")
    for region in SHM_DIR.glob("dmphn*_*"):
        match = SHM_TAG.match(region.name)
        if match and not pid_alive(int(match.group(1))):
            region.unlink(missing_ok=True)
            removed.append(str(region))
    for folder in Path(tempfile.gettempdir()).glob("dmphn-triton-*"):
        match = WORKDIR_TAG.match(folder.name)
        if match and folder.is_dir() and not pid_alive(int(match.group(1))):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(str(folder))
    return removed


def start_watchdog(shm_prefix_: str, workdir: str | os.PathLike) -> subprocess.Popen:
    """A process that cleans up after this one's server when this one ends, however it ends.

    Close its stdin (:func:`stop_watchdog`) after a normal stop; a crash closes it too.
    """
    return subprocess.Popen(
        [sys.executable, "-I", __file__, "--watch", shm_prefix_, str(workdir)],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,  # not in the terminal's group: a Ctrl-C does not stop it before it cleans
    )


def stop_watchdog(watchdog: subprocess.Popen | None, timeout_s: float = 10.0) -> None:
    if watchdog is None:
        return
    if watchdog.stdin is not None:
        watchdog.stdin.close()
    try:
        watchdog.wait(timeout_s)
    except subprocess.TimeoutExpired:
        watchdog.kill()
        watchdog.wait()


def _watch(shm_prefix_: str, workdir: str) -> None:
    sys.stdin.buffer.read()  # returns at EOF: the owner closed the pipe or died
    markers = [shm_prefix_, workdir]
    for _ in range(3):  # a stub may be starting while the server dies
        kill_processes_naming(markers)
        time.sleep(0.2)
    remove_owned_files(shm_prefix_, workdir)


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "--watch":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # only the pipe ends a watchdog
    _watch(sys.argv[2], sys.argv[3])
