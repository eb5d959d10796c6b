"""dmphn-serve: serve a model repository with the bundled Triton Inference Server on 127.0.0.1.

    dmphn-export triton --backend python -H 256 -W 256 -o model_repository
    dmphn-serve model_repository                  # HTTP 8000, gRPC 8001; Ctrl-C stops it

Waits until every model is ready, prints the endpoints, and runs until Ctrl-C or SIGTERM,
then stops the server cleanly (in-flight requests finish). Exits non-zero with one line
when the server or its Python backend stub is missing, a port is taken, the repository
does not load, or the server dies.

The HTTP port is a gate (runtimes.triton_gate) in front of tritonserver on a private loopback
port: an inference request whose declared shape or size cannot be the model's is answered 400
(or 411/413) before Triton allocates anything (``--max-pixels`` bounds any-size dimensions).
Even a ``kill -9`` of this command leaves no server, stub, /dev/shm region or temporary folder
behind (runtimes.triton_reaper); docs/reliability.md.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Annotated

import typer

from cli.common import fail, new_app, user_errors
from dmphn_core.errors import DMPHNError
from dmphn_core.imagecheck import DEFAULT_MAX_PIXELS
from runtimes.triton_gate import InferenceGate
from runtimes.triton_server import HOST, TritonServer, free_port, port_is_free

app = new_app(__doc__.splitlines()[0].removeprefix("dmphn-serve: "))


class _Stop(Exception):
    pass


def _raise_stop(signum, frame) -> None:
    raise _Stop(signal.Signals(signum).name)


@app.command()
@user_errors
def serve(
    repository: Annotated[Path, typer.Argument(help="model repository (dmphn-export triton -o REPO)")],
    http_port: Annotated[int, typer.Option(help="HTTP port (KServe v2 REST)")] = 8000,
    grpc_port: Annotated[int, typer.Option(help="gRPC port")] = 8001,
    metrics_port: Annotated[int | None, typer.Option(help="Prometheus metrics port (default: metrics off)")] = None,
    startup_timeout: Annotated[float, typer.Option(help="seconds to wait for every model to be ready")] = 300.0,
    exit_timeout: Annotated[int, typer.Option(help="seconds in-flight requests get to finish on stop")] = 10,
    log: Annotated[Path | None, typer.Option(help="write the server's log here (default: a temporary file)")] = None,
    max_pixels: Annotated[int, typer.Option(help="HTTP requests may declare at most this many pixels (H x W) per image")] = DEFAULT_MAX_PIXELS,
) -> None:
    """Start tritonserver on 127.0.0.1, wait until ready, print the endpoints, stop on Ctrl-C/SIGTERM."""
    if not port_is_free(http_port):
        raise fail(f"port taken: {HOST}:{http_port} (http) is in use; pick another with --http-port")
    private_port = next(port for port in iter(free_port, None) if port not in (http_port, grpc_port, metrics_port))
    server = TritonServer(repository, http_port=private_port, grpc_port=grpc_port, metrics_port=metrics_port,
                          exit_timeout_s=exit_timeout, log_path=log)
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    gate = None
    try:
        print(f"starting tritonserver on {HOST} for {repository} …", flush=True)
        server.start(timeout_s=startup_timeout)
        for line in server.reaped:
            print(f"removed {line}, left by a server whose owner was killed", flush=True)
        gate = _start_gate(http_port, server.http_port, max_pixels)
        for kind, where in {**server.endpoints(), "http": f"{HOST}:{http_port}"}.items():
            print(f"{kind:8s} {where}", flush=True)
        print(f"ready: curl -s {HOST}:{http_port}/v2/health/ready; Ctrl-C stops", flush=True)
        while server.is_running():
            time.sleep(0.5)
        code = server.stop()
        raise fail(f"tritonserver exited on its own (code {code}); see {log or 'its log (--log FILE)'}", 1)
    except (_Stop, KeyboardInterrupt) as stop:
        reason = str(stop) or "Ctrl-C"
        print(f"{reason}: stopping tritonserver …", flush=True)
        code = server.stop()
        print(f"stopped (exit code {code})", flush=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if gate is not None:
            gate.stop()
        if server.is_running():
            server.kill()


def _start_gate(port: int, upstream_port: int, max_pixels: int) -> InferenceGate:
    try:
        return InferenceGate.in_front_of(HOST, port, upstream_port, max_pixels=max_pixels).start()
    except OSError as exc:
        raise DMPHNError(f"cannot listen on {HOST}:{port} (http): {exc.strerror or exc}; pick another with --http-port") from None


def main() -> None:
    app()


if __name__ == "__main__":
    main()
