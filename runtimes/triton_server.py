"""Start, watch and stop a local Triton Inference Server (the binary bundled in ``nvidia-pytriton``).

The PyPI wheel ``nvidia-pytriton`` ships ``pytriton/tritonserver/{bin/tritonserver, backends/python,
python_backend_stubs/<X.Y>/triton_python_backend_stub}`` and its shared libraries in
``nvidia_pytriton.libs``. Only those files are used: the ``pytriton`` Python package is never
imported (it pins numpy < 2; install the wheel with ``pip install --no-deps``, as
``scripts/setup.sh`` does).

The Python backend needs the stub built for this interpreter's Python version next to
``libtriton_python.so``; :class:`TritonServer` assembles such a backend folder out of symlinks
in a private temporary folder, so the installed wheel is never modified and several servers
can run side by side. The stub embeds libpython and finds this virtual environment through
``PATH`` (the environment's ``bin`` comes first), and the toolkit through ``PYTHONPATH``.

Servers listen on 127.0.0.1 only::

    with TritonServer("model_repository", http_port=8000, grpc_port=8001) as server:
        print(server.endpoints())   # {"http": "127.0.0.1:8000", "grpc": "127.0.0.1:8001"}
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from dmphn_core.errors import DMPHNError, RuntimeUnavailable

from .triton_reaper import reap_leftovers, shm_prefix, start_watchdog, stop_watchdog, workdir_prefix

HOST = "127.0.0.1"
#: Where the toolkit's packages live: the Python backend's model.py imports ``runtimes`` from here.
TOOLKIT_ROOT = Path(__file__).resolve().parent.parent
#: Point this at a folder laid out like ``pytriton/tritonserver`` to use another server build.
DIST_ENV = "DMPHN_TRITONSERVER_DIR"
INSTALL_HINT = "pip install --no-deps nvidia-pytriton==0.7.0 (scripts/setup.sh installs it)"


class ServerError(DMPHNError):
    """The server could not start, did not become ready, or died."""


@dataclass(frozen=True)
class TritonDistribution:
    """The files of one tritonserver build (``root`` is laid out like ``pytriton/tritonserver``)."""

    root: Path
    libs: Path

    @property
    def binary(self) -> Path:
        return self.root / "bin" / "tritonserver"

    @property
    def python_backend(self) -> Path:
        return self.root / "backends" / "python"

    def stub(self, version: str | None = None) -> Path:
        version = version or f"{sys.version_info.major}.{sys.version_info.minor}"
        return self.root / "python_backend_stubs" / version / "triton_python_backend_stub"


def find_distribution(root: str | os.PathLike | None = None) -> TritonDistribution:
    """Locate the bundled tritonserver; raise RuntimeUnavailable with the fix when it is missing."""
    if root is None and os.environ.get(DIST_ENV):
        root = os.environ[DIST_ENV]
    if root is None:
        spec = importlib.util.find_spec("pytriton")  # finds the folder without importing the package
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeUnavailable(f"tritonserver is not installed: {INSTALL_HINT}")
        package = Path(list(spec.submodule_search_locations)[0])
        dist = TritonDistribution(package / "tritonserver", package.parent / "nvidia_pytriton.libs")
    else:
        root = Path(root)
        dist = TritonDistribution(root, root / "external_libs")
    if not os.access(dist.binary, os.X_OK):
        raise RuntimeUnavailable(f"tritonserver binary not found at {dist.binary}: {INSTALL_HINT}")
    if not (dist.python_backend / "libtriton_python.so").is_file():
        raise RuntimeUnavailable(f"Triton's Python backend is missing from {dist.python_backend}: {INSTALL_HINT}")
    return dist


def check_python_stub(dist: TritonDistribution) -> Path:
    """The Python backend stub for this interpreter; RuntimeUnavailable when the build has none."""
    stub = dist.stub()
    if not os.access(stub, os.X_OK):
        versions = sorted(p.name for p in (dist.root / "python_backend_stubs").glob("*") if p.is_dir())
        raise RuntimeUnavailable(
            f"Triton's Python backend has no stub for Python {sys.version_info.major}.{sys.version_info.minor} "
            f"(this build has: {', '.join(versions) or 'none'}); run the toolkit with one of those"
        )
    missing = _missing_libraries(stub, dist.libs)
    if missing:
        raise RuntimeUnavailable(
            f"Triton's Python backend stub cannot load {', '.join(missing)} (it embeds the shared libpython; "
            f"on Debian/Ubuntu: apt-get install libpython{sys.version_info.major}.{sys.version_info.minor})"
        )
    return stub


def _missing_libraries(binary: Path, libs: Path) -> list[str]:
    """Shared libraries ``binary`` needs that the loader cannot find (empty when ldd is unavailable)."""
    env = {**os.environ, "LD_LIBRARY_PATH": os.pathsep.join(filter(None, [str(libs), os.environ.get("LD_LIBRARY_PATH")]))}
    try:
        listing = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, env=env, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.split("=>")[0].strip() for line in listing.splitlines() if "not found" in line]


def port_is_free(port: int, host: str = HOST) -> bool:
    """True when nothing listens on ``host:port`` (closed connections lingering in TIME_WAIT do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = HOST) -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _model_names(repository: Path) -> list[str]:
    return sorted(p.name for p in repository.iterdir() if (p / "config.pbtxt").is_file())


# Lines of tritonserver's log that explain a failed start, most specific first.
_LOAD_FAILURE = re.compile(r'failed to load \'([^\']+)\' version \d+: ([^"\\]+)')
_PORT_TAKEN = (re.compile(r"Socket '([^']+)' already in use"), re.compile(r"failed to start (\w+) service"))


def explain_failure(log: str) -> str:
    """One line saying why the server did not come up, from its log."""
    loads = _LOAD_FAILURE.findall(log)
    if loads:
        return "the repository did not load: " + "; ".join(f"{name}: {reason.strip()}" for name, reason in loads)
    for pattern in _PORT_TAKEN:
        port = pattern.search(log)
        if port:
            return f"port taken: {port.group(1)} (another server is listening; pick other ports)"
    errors = [line.strip() for line in log.splitlines() if line.startswith("error:")]
    return errors[-1][:300] if errors else "tritonserver exited without saying why (see its log)"


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it when the thread that started it dies (Linux), so a
    crashed or killed caller never leaves a server holding its ports."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


class TritonServer:
    """A ``tritonserver`` child process serving ``repository`` on 127.0.0.1.

    ``start()`` returns once every model is ready (or raises ServerError and leaves nothing
    running); ``stop()`` asks for a clean shutdown (SIGTERM: in-flight requests finish) and
    kills the process group after ``exit_timeout_s``; ``kill()`` is a crash (SIGKILL).
    """

    def __init__(
        self,
        repository: str | os.PathLike,
        *,
        http_port: int = 8000,
        grpc_port: int = 8001,
        metrics_port: int | None = None,
        exit_timeout_s: int = 10,
        log_path: str | os.PathLike | None = None,
        dist: TritonDistribution | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.repository = Path(repository).resolve()
        self.http_port, self.grpc_port, self.metrics_port = http_port, grpc_port, metrics_port
        self.exit_timeout_s = exit_timeout_s
        self.log_path = Path(log_path) if log_path else None
        self._dist = dist
        self.extra_args = list(extra_args or [])
        self.process: subprocess.Popen | None = None
        self._workdir: tempfile.TemporaryDirectory | None = None
        self._log_file = None
        # per-server name prefix of the Python backend's /dev/shm regions (with this PID: servers side
        # by side do not share them, and those of a killed owner are found; runtimes.triton_reaper)
        self.shm_prefix = shm_prefix(f"{id(self):x}")
        self._watchdog: subprocess.Popen | None = None
        #: what the start removed of servers whose owner was killed (reap_leftovers)
        self.reaped: list[str] = []

    # -- set-up ----------------------------------------------------------------------
    def _check(self) -> TritonDistribution:
        if not self.repository.is_dir():
            raise ServerError(f"model repository not found: {self.repository}")
        if not _model_names(self.repository):
            raise ServerError(f"{self.repository} holds no model (no <model>/config.pbtxt); write one with "
                              "dmphn-export triton")
        ports = [("http", self.http_port), ("grpc", self.grpc_port)]
        if self.metrics_port is not None:
            ports.append(("metrics", self.metrics_port))
        if len({port for _, port in ports}) != len(ports):
            raise ServerError(f"ports must differ: {', '.join(f'{k} {p}' for k, p in ports)}")
        for kind, port in ports:
            if not port_is_free(port):
                raise ServerError(f"port taken: {HOST}:{port} ({kind}) is in use; pick another with --{kind}-port")
        dist = self._dist or find_distribution()
        check_python_stub(dist)
        return dist

    def _backend_dir(self, dist: TritonDistribution, workdir: Path) -> Path:
        """``<workdir>/backends/python`` = the wheel's Python backend + this Python's stub (symlinks)."""
        python = workdir / "backends" / "python"
        python.mkdir(parents=True)
        for item in dist.python_backend.iterdir():
            if item.name != "__pycache__":
                (python / item.name).symlink_to(item)
        (python / "triton_python_backend_stub").symlink_to(check_python_stub(dist))
        return python.parent

    def _environment(self, dist: TritonDistribution) -> dict[str, str]:
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(dist.libs), env.get("LD_LIBRARY_PATH")]))
        # The stub embeds libpython; it finds this virtual environment from the first python3 on PATH.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TOOLKIT_ROOT), env.get("PYTHONPATH")]))
        return env

    def command(self, dist: TritonDistribution, backends: Path) -> list[str]:
        metrics = (["--allow-metrics=true", f"--metrics-address={HOST}", f"--metrics-port={self.metrics_port}"]
                   if self.metrics_port is not None else ["--allow-metrics=false"])
        return [
            str(dist.binary),
            f"--model-repository={self.repository}",
            f"--backend-directory={backends}",
            f"--cache-directory={dist.root / 'caches'}",
            f"--http-address={HOST}", f"--http-port={self.http_port}",
            f"--grpc-address={HOST}", f"--grpc-port={self.grpc_port}",
            *metrics,
            "--allow-sagemaker=false", "--allow-vertex-ai=false",
            "--strict-readiness=true", "--exit-on-error=true",
            f"--exit-timeout-secs={self.exit_timeout_s}",
            f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
            *self.extra_args,
        ]

    # -- lifecycle -------------------------------------------------------------------
    def start(self, timeout_s: float = 120.0) -> "TritonServer":
        if self.is_running():
            return self
        dist = self._check()
        self.reaped = reap_leftovers()
        self._workdir = tempfile.TemporaryDirectory(prefix=workdir_prefix())
        workdir = Path(self._workdir.name)
        backends = self._backend_dir(dist, workdir)
        log_path = self.log_path or workdir / "tritonserver.log"
        self._log_file = open(log_path, "ab")  # noqa: SIM115 - open while the server runs
        self._log_offset = self._log_file.tell()  # a --log file kept across runs: read this run's part only
        self.process = subprocess.Popen(
            self.command(dist, backends), env=self._environment(dist), cwd=workdir,
            stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopping it also stops the Python stubs
            preexec_fn=_die_with_parent,
        )
        self._watchdog = start_watchdog(self.shm_prefix, workdir)  # cleans up even after a kill -9 of this process
        try:
            self.wait_ready(timeout_s)
        except ServerError as exc:
            exited = self.process.poll() is not None  # else: still starting when the time ran out
            log = self.log()
            self.kill()
            reason = explain_failure(log) if exited else str(exc)
            raise ServerError(f"tritonserver did not start: {reason}") from None
        except BaseException:
            self.kill()
            raise
        return self

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise ServerError("tritonserver exited")
            if self.ready():
                return
            time.sleep(0.2)
        raise ServerError(f"not ready after {timeout_s:g} s")

    def ready(self) -> bool:
        """True when the server answers ``/v2/health/ready`` with 200 (every model loaded)."""
        try:
            with urllib.request.urlopen(f"http://{HOST}:{self.http_port}/v2/health/ready", timeout=2) as reply:
                return reply.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> int | None:
        """SIGTERM, wait for in-flight requests (up to ``exit_timeout_s``), then SIGKILL. Returns the exit code."""
        if self.process is not None and self.process.poll() is None:
            # the server alone: it drains in-flight requests, then stops its Python stubs itself
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(self.exit_timeout_s + 5)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.process.wait(10)
        return self._cleanup()

    def kill(self) -> int | None:
        """A crash: SIGKILL to the server and its Python stubs, no shutdown."""
        if self.process is not None and self.process.poll() is None:
            self._signal(signal.SIGKILL)
            self.process.wait(10)
        return self._cleanup()

    def _signal(self, signum: int) -> None:
        assert self.process is not None
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass

    def _cleanup(self) -> int | None:
        code = self.process.returncode if self.process is not None else None
        if self.process is not None:
            # the stubs may outlive a killed server by a moment; they are in its process group
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for region in Path("/dev/shm").glob(self.shm_prefix + "*"):
            region.unlink(missing_ok=True)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._workdir is not None and self.log_path is None:
            self._saved_log = self.log()
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None
        stop_watchdog(self._watchdog)
        self._watchdog = None
        return code

    def log(self) -> str:
        """What the server wrote so far (its stdout and stderr)."""
        path = self.log_path or (Path(self._workdir.name) / "tritonserver.log" if self._workdir else None)
        if path is None or not path.is_file():
            return getattr(self, "_saved_log", "")
        with open(path, "rb") as log:
            log.seek(getattr(self, "_log_offset", 0))
            return log.read().decode(errors="replace")

    def endpoints(self) -> dict[str, str]:
        points = {"http": f"{HOST}:{self.http_port}", "grpc": f"{HOST}:{self.grpc_port}"}
        if self.metrics_port is not None:
            points["metrics"] = f"http://{HOST}:{self.metrics_port}/metrics"
        return points

    def __enter__(self) -> "TritonServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __del__(self) -> None:  # last resort: never leave a server behind
        if getattr(self, "process", None) is not None and self.process.poll() is None:
            self.kill()
