"""dmphn-loadtest: N concurrent Triton clients (HTTP and gRPC) against a served DMPHN model.

    dmphn-loadtest model_repository --clients 4 --requests 200 --json load.json --markdown load.md

By default it starts the bundled server from the repository on free loopback ports, runs
each protocol in turn, and stops the server. ``--no-start --http H:P --grpc H:P`` uses a
server that is already up. Every answer is compared with the local runner on the
repository's own artifact (ONNX Runtime on ``<repo>/<model>/1/model.onnx``). Exits 1 when
any request failed or any answer is off the local runner's output.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from benchmarks.loadtest import LoadSettings, loadtest_markdown, run_loadtest, write_strict_json
from benchmarks.machine import machine_info
from cli.common import fail, new_app, user_errors
from dmphn_core.errors import DMPHNError
from dmphn_core.fileio import write_text_atomic
from runtimes.compare import tolerance_for

app = new_app(__doc__.splitlines()[0].removeprefix("dmphn-loadtest: "))


def _served_shape(repository: Path, model_name: str) -> tuple[int, int]:
    from google.protobuf import text_format

    from export.to_triton import model_config_pb2

    path = repository / model_name / "config.pbtxt"
    if not path.is_file():
        raise DMPHNError(f"no model {model_name!r} in {repository} ({path} not found)")
    try:
        config = text_format.Parse(path.read_text(), model_config_pb2().ModelConfig())
        _, height, width = config.input[0].dims
    except (text_format.ParseError, ValueError, IndexError) as exc:
        raise DMPHNError(f"{path} is not a DMPHN Triton config: {exc}") from None
    return int(height), int(width)


def _reference_artifact(repository: Path, model_name: str) -> Path:
    versions = sorted((p for p in (repository / model_name).iterdir() if p.is_dir() and p.name.isdigit()),
                      key=lambda p: int(p.name))
    for folder in reversed(versions):
        if (folder / "model.onnx").is_file():
            return folder / "model.onnx"
    raise DMPHNError(f"{repository / model_name} has no model.onnx to compare the served output with")


@app.command()
@user_errors
def loadtest(
    repository: Annotated[Path, typer.Argument(help="the model repository that is (or will be) served")],
    protocol: Annotated[str, typer.Option(help="http, grpc, or http,grpc (one run each)")] = "http,grpc",
    clients: Annotated[int, typer.Option(help="concurrent clients")] = 4,
    requests: Annotated[int | None, typer.Option(help="requests per protocol run (all clients together)")] = 200,
    duration: Annotated[float | None, typer.Option(help="seconds per protocol run instead of --requests")] = None,
    batch: Annotated[int, typer.Option(help="images per request")] = 1,
    model_name: Annotated[str, typer.Option(help="model name in the repository")] = "dmphn",
    start: Annotated[bool, typer.Option("--start/--no-start", help="start the bundled server from REPO")] = True,
    http: Annotated[str | None, typer.Option(help="with --no-start: HOST:PORT of the HTTP endpoint")] = None,
    grpc: Annotated[str | None, typer.Option(help="with --no-start: HOST:PORT of the gRPC endpoint")] = None,
    timeout: Annotated[float, typer.Option(help="seconds one request may take")] = 60.0,
    json_path: Annotated[Path | None, typer.Option("--json", help="write the summaries as strict JSON")] = None,
    markdown: Annotated[Path | None, typer.Option("--markdown", help="write the table as markdown")] = None,
) -> None:
    """Latency p50/p90/p99, throughput, errors and served-vs-local parity under concurrent load."""
    from runtimes.onnxruntime import OnnxRuntimeRunner
    from runtimes.triton import PROTOCOLS, TritonRunner
    from runtimes.triton_server import TritonServer, free_port

    protocols = [p.strip() for p in protocol.split(",") if p.strip()]
    if not protocols or any(p not in PROTOCOLS for p in protocols):
        raise DMPHNError(f"unknown protocol in {protocol!r}; use http, grpc or http,grpc")
    settings = LoadSettings(clients=clients, requests=None if duration else requests, duration_s=duration,
                            batch=batch)
    settings.check()
    height, width = _served_shape(repository, model_name)
    reference = OnnxRuntimeRunner(_reference_artifact(repository, model_name), device="cpu")
    server = None
    if start:
        server = TritonServer(repository, http_port=free_port(), grpc_port=free_port())
        print(f"starting tritonserver for {repository} …", flush=True)
        server.start()
        urls = server.endpoints()
    else:
        urls = {"http": http, "grpc": grpc}
        missing = [p for p in protocols if not urls.get(p)]
        if missing:
            raise DMPHNError(f"--no-start needs --{' and --'.join(missing)} HOST:PORT")
    machine = machine_info("cpu")
    rows = []
    try:
        for proto in protocols:
            print(f"{proto}: {clients} clients, {f'{duration:g} s' if duration else f'{requests} requests'}, "
                  f"batch {batch}, {height}x{width} → {urls[proto]}", flush=True)
            load_before = os.getloadavg()[0]
            summary, _ = run_loadtest(
                lambda proto=proto: TritonRunner(urls[proto], protocol=proto, model_name=model_name, timeout_s=timeout),
                settings, height, width, reference=reference, tolerance=tolerance_for("fp32"),
            )
            rows.append({"runtime": "triton", "protocol": proto, "url": urls[proto], "model_name": model_name,
                         "repository": str(repository), **summary,
                         "host_load_1m": [load_before, os.getloadavg()[0]], "machine": machine})
    finally:
        if server is not None:
            server.stop()
    table = loadtest_markdown(rows)
    print(table)
    if json_path:
        write_strict_json(json_path, rows)
    if markdown:
        write_text_atomic(markdown, table)
    bad = [r for r in rows if r["status"] != "ok"]
    if bad:
        raise fail("; ".join(f"{r['protocol']}: {r['errors']} of {r['sent']} requests failed, "
                             f"{(r.get('parity') or {}).get('mismatches', 0)} answers off the local runner"
                             for r in bad), 1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
