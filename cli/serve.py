"""dmphn-serve: serve a model repository with the bundled Triton Inference Server on 127.0.0.1.

    dmphn-export triton --backend python -H 256 -W 256 -o model_repository
    dmphn-serve model_repository                  # HTTP 8000, gRPC 8001; Ctrl-C stops it

Waits until every model is ready, prints the endpoints, and runs until Ctrl-C or SIGTERM,
then stops the server cleanly (in-flight requests finish). Exits non-zero with one line
when the server or its Python backend stub is missing, a port is taken, the repository
does not load, or the server dies.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Annotated

import typer

from cli.common import fail, new_app, user_errors
from runtimes.triton_server import HOST, TritonServer

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
) -> None:
    """Start tritonserver on 127.0.0.1, wait until ready, print the endpoints, stop on Ctrl-C/SIGTERM."""
    server = TritonServer(repository, http_port=http_port, grpc_port=grpc_port, metrics_port=metrics_port,
                          exit_timeout_s=exit_timeout, log_path=log)
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    try:
        print(f"starting tritonserver on {HOST} for {repository} …", flush=True)
        server.start(timeout_s=startup_timeout)
        for kind, where in server.endpoints().items():
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
        if server.is_running():
            server.kill()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
