"""dmphn-loadtest: N concurrent Triton clients (HTTP and gRPC) against a served DMPHN model.

    dmphn-loadtest model_repository --clients 4 --requests 200 --json load.json --markdown load.md

With ``--concurrency 1,2,4,8`` (or ``start:end:step``) it sweeps: one row per level and a
throughput-vs-latency ``--plot``. ``--search`` also tries a small grid of the repository's knobs
(``--instances`` x ``--preferred-batch`` x ``--queue-delay-us``), reloading the model with each
config, and writes the best one (``--best-config``) headed by the table that chose it.

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

from benchmarks.loadsweep import (
    parse_concurrency,
    parse_grid,
    plot_sweep,
    reload_model,
    run_search,
    run_sweep,
    sweep_markdown,
    write_best_config,
)
from benchmarks.loadtest import LoadSettings, loadtest_markdown, run_loadtest, write_strict_json
from benchmarks.machine import machine_info
from cli.common import fail, new_app, user_errors
from dmphn_core.errors import DMPHNError
from dmphn_core.fileio import write_text_atomic
from runtimes.compare import tolerance_for

app = new_app(__doc__.splitlines()[0].removeprefix("dmphn-loadtest: "))


def _served_config(repository: Path, model_name: str):
    """The repository's ``ModelConfig`` message for ``model_name`` and its frame (height, width)."""
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
    return config, (int(height), int(width))


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
    concurrency: Annotated[str | None, typer.Option(help="sweep: concurrent clients per level, 1,2,4,8 or start:end:step (--requests per level, at least 2 per client)")] = None,
    plot: Annotated[Path | None, typer.Option(help="with --concurrency: PNG of throughput against latency")] = None,
    search: Annotated[bool, typer.Option("--search", help="with --concurrency: try the grid of --instances x --preferred-batch x --queue-delay-us, reloading the model for each")] = False,
    instances: Annotated[str, typer.Option(help="--search: instance counts")] = "1,2",
    preferred_batch: Annotated[str, typer.Option(help="--search: preferred batch sizes (0: none)")] = "0,2",
    queue_delay_us: Annotated[str, typer.Option(help="--search: max queue delays, microseconds")] = "100,5000",
    p99_budget_ms: Annotated[float | None, typer.Option(help="--search: best = most img/s with p99 within this")] = None,
    best_config: Annotated[Path, typer.Option(help="--search: where the best config.pbtxt goes")] = Path("best_config.pbtxt"),
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
    base_config, (height, width) = _served_config(repository, model_name)
    levels = parse_concurrency(concurrency) if concurrency is not None else None
    if (search or plot) and levels is None:
        raise DMPHNError("--search and --plot go with a sweep: give --concurrency")
    points = parse_grid(instances, preferred_batch, queue_delay_us, base_config.max_batch_size) if search else None
    reference = OnnxRuntimeRunner(_reference_artifact(repository, model_name), device="cpu")
    server = None
    if start:
        # --search reloads the model with each config: Triton's explicit model control
        control = ["--model-control-mode=explicit", f"--load-model={model_name}"] if search else []
        server = TritonServer(repository, http_port=free_port(), grpc_port=free_port(), extra_args=control)
        print(f"starting tritonserver for {repository} …", flush=True)
        server.start()
        urls = server.endpoints()
    else:
        urls = {"http": http, "grpc": grpc}
        missing = [p for p in dict.fromkeys([*protocols, *(["http"] if search else [])]) if not urls.get(p)]
        if missing:
            raise DMPHNError(f"--no-start needs --{' and --'.join(missing)} HOST:PORT")
    machine = machine_info("cpu")
    if levels is not None:
        try:
            return _sweep(levels, points, protocols, urls, model_name, timeout, settings, height, width, reference,
                          base_config, p99_budget_ms, best_config, machine, json_path, markdown, plot)
        finally:
            if server is not None:
                server.stop()
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


def _sweep(levels, points, protocols, urls, model_name, timeout, settings, height, width, reference, base_config,
           p99_budget_ms, best_config, machine, json_path, markdown, plot) -> None:
    from runtimes.triton import TritonRunner

    def sweep_protocols() -> list[dict]:
        rows = []
        for proto in protocols:
            print(f"{proto}: concurrency {', '.join(map(str, levels))}, batch {settings.batch}, {height}x{width} "
                  f"→ {urls[proto]}", flush=True)
            client = lambda proto=proto: TritonRunner(urls[proto], protocol=proto, model_name=model_name,  # noqa: E731
                                                      timeout_s=timeout)
            rows += [{"runtime": "triton", "protocol": proto, "url": urls[proto], "model_name": model_name, **row,
                      "host_load_1m": os.getloadavg()[0], "machine": machine}
                     for row in run_sweep(client, levels, requests=settings.requests, duration_s=settings.duration_s,
                                          batch=settings.batch, height=height, width=width, reference=reference,
                                          tolerance=tolerance_for("fp32"))]
        return rows

    best = None
    if points is None:
        rows = sweep_protocols()
    else:
        rows, best = run_search(points, base_config, lambda config: reload_model(urls["http"], model_name, config),
                                sweep_protocols, p99_budget_ms=p99_budget_ms)
    table = sweep_markdown(rows)
    print(table)
    if json_path:
        write_strict_json(json_path, {"rows": rows, "best": best} if points is not None else rows)
    if markdown:
        write_text_atomic(markdown, table)
    if plot:
        plot_sweep(plot, rows)
    if points is not None:
        if best is None:
            raise fail("no config of the search answered every request" +
                       (f" within p99 {p99_budget_ms:g} ms" if p99_budget_ms else ""), 1)
        write_best_config(best_config, base_config, best, table)
        print(f"best: {best['config']} at concurrency {best['concurrency']} ({best['images_per_s']:.2f} img/s) "
              f"-> {best_config}")
    bad = [r for r in rows if r["status"] != "ok"]
    if bad:
        raise fail(f"{len(bad)} of {len(rows)} levels had failed requests or answers off the local runner", 1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
