"""What a killed server's owner left is removed at the next start; a live owner's never (issue #27 item 6)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from runtimes.triton_reaper import reap_leftovers

pytestmark = pytest.mark.skipif(not Path("/dev/shm").is_dir() or not Path("/proc/self").is_dir(),
                                reason="needs Linux /proc and /dev/shm")


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _stub_like(marker: str) -> subprocess.Popen:
    """A process that ignores SIGTERM (as triton_python_backend_stub does) and names ``marker`` on its command line."""
    return subprocess.Popen(["triton_python_backend_stub", "-c", "import signal, time\nsignal.signal(signal.SIGTERM, "
                             "signal.SIG_IGN)\ntime.sleep(120)", marker], executable=sys.executable)


def _leftovers_of(owner: int, token: str) -> tuple[subprocess.Popen, Path, Path]:
    process = _stub_like(f"dmphn{owner}_{token}_region")
    region = Path("/dev/shm") / f"dmphn{owner}_{token}_region"
    region.write_bytes(b"\0" * 64)
    folder = Path(tempfile.mkdtemp(prefix=f"dmphn-triton-{owner}-"))
    return process, region, folder


def test_a_dead_owners_leftovers_go_and_a_live_owners_stay():
    dead_owner = _dead_pid()
    # a process that names the marker but is no server program (a `tail -f` of the log, say): left alone
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", f"dmphn{dead_owner}_test_region"])
    dead = _leftovers_of(dead_owner, "test")
    live = _leftovers_of(os.getpid(), "livetest")
    try:
        time.sleep(0.3)  # both processes have their command lines
        removed = reap_leftovers()
        process, region, folder = dead
        assert process.wait(10) == -signal.SIGKILL
        assert not region.exists() and not folder.exists()
        assert f"process {process.pid}" in removed and str(region) in removed and str(folder) in removed
        process, region, folder = live
        assert process.poll() is None and region.exists() and folder.exists() and bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
        for process, region, folder in (dead, live):
            if process.poll() is None:
                process.kill()
                process.wait()
            region.unlink(missing_ok=True)
            folder.rmdir() if folder.exists() else None
