"""dmphn-bench and dmphn-parity: thin front ends over benchmarks.bench and benchmarks.parity."""

from __future__ import annotations

import contextlib
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import typer

from benchmarks.bench import BenchSettings, prepare_artifacts, run_benchmark
from benchmarks.machine import machine_info
from benchmarks.parity import load_frames, run_parity, run_parity_on_frames
from benchmarks.prepare import ArtifactCache, RunnerSpec, parse_precisions, parse_runtimes, parse_shape
from benchmarks.report import (
    add_speedups,
    append_jsonl,
    bench_markdown,
    latest_rows,
    noise_warning,
    parity_markdown,
    plot_latency,
    write_csv,
    write_json,
)
from cli.common import fail, new_app, user_errors
from dmphn_core.authors import MIN_PSNR_VS_PUBLISHED_DB
from dmphn_core.errors import DMPHNError
from dmphn_core.fileio import write_text_atomic
from dmphn_core.precision import PRECISIONS
from runtimes import runtime_names

bench_app = new_app("Latency of every runtime on the same inputs, side by side.")
parity_app = new_app("Parity of every runtime against the PyTorch fp32 reference.")

CheckpointOpt = Annotated[Path | None, typer.Option("--checkpoint", "-c", help="checkpoint (default: the shipped demo model)")]
RuntimeOpt = Annotated[str, typer.Option("--runtime", "-r", help=f"comma list of {', '.join(runtime_names())}, or 'all'")]
DeviceOpt = Annotated[str | None, typer.Option(help="cpu or cuda (default: cuda when available)")]
PrecisionOpt = Annotated[str, typer.Option(help=f"comma list of {', '.join(PRECISIONS)} (pairs a runtime cannot do are skipped rows)")]
WorkdirOpt = Annotated[Path | None, typer.Option(help="keep exported artifacts here (default: a temporary folder)")]
CompileModeOpt = Annotated[str, typer.Option(help="torch.compile mode: default, max-autotune, reduce-overhead")]
CudaGraphOpt = Annotated[bool, typer.Option("--cuda-graph", help="capture TensorRT / torch.compile runs in a CUDA graph")]
EmulatedOpt = Annotated[bool, typer.Option("--allow-emulated", help="also run pairs this machine only emulates (bf16 in PyTorch on a CPU without bf16 instructions: about 10x slower than fp32); skipped rows otherwise")]
ThreadsOpt = Annotated[int | None, typer.Option(help="CPU threads for torch, ONNX Runtime and OpenVINO")]
MarkdownOpt = Annotated[Path | None, typer.Option("--markdown", help="write the table as markdown")]
JsonOpt = Annotated[Path | None, typer.Option("--json", help="write a JSON list of rows")]


def _device(device: str | None) -> str:
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda"):
        raise DMPHNError(f"unknown device {device!r}; use cpu or cuda")
    return device


def _set_threads(threads: int | None) -> None:
    if threads is not None:
        if threads < 1:
            raise DMPHNError(f"--threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)


def _specs(runtime: str, device: str, precision: str, compile_mode: str, cuda_graph: bool,
           allow_emulated: bool = False) -> list[RunnerSpec]:
    if compile_mode not in ("default", "max-autotune", "reduce-overhead"):
        raise DMPHNError(f"unknown compile mode {compile_mode!r}; use default, max-autotune or reduce-overhead")
    runtimes = parse_runtimes(runtime)
    specs = [
        RunnerSpec(key, device, prec, compile_mode, cuda_graph, allow_emulated)
        for key in runtimes
        for prec in parse_precisions(precision)
    ]
    reasons = [spec.unavailable_reason() for spec in specs]
    if runtime.strip() != "all" and all(reasons):
        # nothing asked for by name can run here: say why instead of printing an empty table.
        # Where some pairs can run, the others become skipped rows with their reasons.
        raise DMPHNError(f"{specs[0].label} cannot run here: {reasons[0]}")
    return specs


def _workdir(workdir: Path | None) -> tuple[Path, tempfile.TemporaryDirectory | None]:
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        return workdir, None
    temp = tempfile.TemporaryDirectory(prefix="dmphn-")
    return Path(temp.name), temp


@bench_app.command()
@user_errors
def bench(
    checkpoint: CheckpointOpt = None,
    runtime: RuntimeOpt = "all",
    device: DeviceOpt = None,
    precision: PrecisionOpt = "fp32",
    shape: Annotated[list[str] | None, typer.Option(help="HxW, repeatable (default 256x256)")] = None,
    batch: Annotated[list[int] | None, typer.Option(help="batch size, repeatable (default 1)")] = None,
    warmup: Annotated[int, typer.Option(help="untimed calls before timing")] = 3,
    iters: Annotated[int, typer.Option(help="timed calls per row per round")] = 10,
    rounds: Annotated[int, typer.Option(help="round-robin rounds: every row is timed once per round; a row's p50 is the min of its round medians")] = 3,
    keep_active: Annotated[bool, typer.Option("--keep-active/--release-between-rounds", help="keep every runner loaded across rounds, or free each after its turn (less memory with many large rows; re-activated and warmed up every round)")] = True,
    threads: ThreadsOpt = None,
    compile_mode: CompileModeOpt = "default",
    cuda_graph: CudaGraphOpt = False,
    allow_emulated: EmulatedOpt = False,
    peak_tflops: Annotated[float | None, typer.Option(help="device ceiling for the roofline floor (default: measured)")] = None,
    workdir: WorkdirOpt = None,
    markdown: MarkdownOpt = None,
    json_path: JsonOpt = None,
    csv_path: Annotated[Path | None, typer.Option("--csv", help="write rows as CSV")] = None,
    plot: Annotated[Path | None, typer.Option(help="write a PNG plot of latency by runtime and shape")] = None,
    inputs: Annotated[Path | None, typer.Option("--inputs", help="time on these frames (the first `batch` of them) instead of random data; --shape defaults to their size")] = None,
    prepare_only: Annotated[bool, typer.Option("--prepare-only", help="only build (export and verify) the artifacts into --workdir, time nothing: run it before a timed run, so that run only times")] = False,
    jsonl: Annotated[Path | None, typer.Option("--jsonl", help="append each row as one JSON line as soon as it is known (skipped/failed rows at once, a 'partial' row after each round, then the final row), so a run cut short keeps what finished")] = None,
) -> None:
    """Time runtimes on one set of inputs: mean/p50/p90/p99/min, throughput, memory, roofline."""
    device = _device(device)
    frames = torch.from_numpy(np.concatenate([x for _, x in load_frames(inputs)])) if inputs is not None else None
    if frames is not None and not shape:
        shape = [f"{frames.shape[-2]}x{frames.shape[-1]}"]
    if warmup < 0 or iters < 1 or rounds < 1:
        raise DMPHNError("--warmup must be >= 0, --iters and --rounds >= 1")
    _set_threads(threads)
    specs = _specs(runtime, device, precision, compile_mode, cuda_graph, allow_emulated)
    settings = BenchSettings(
        shapes=[parse_shape(s) for s in (shape or ["256x256"])],
        batches=batch or [1],
        warmup=warmup,
        iters=iters,
        rounds=rounds,
        keep_active=keep_active,
        threads=threads,
        peak_flops={p: peak_tflops * 1e12 for p in parse_precisions(precision)} if peak_tflops else None,
        frames=frames,
        frames_label=f"frames of {inputs}" if inputs is not None else "",
    )
    if prepare_only:
        if workdir is None:
            raise DMPHNError("--prepare-only needs --workdir (where the timed run will find the artifacts)")
        prepare_artifacts(specs, ArtifactCache(checkpoint, workdir), settings)
        return
    if jsonl is not None:
        jsonl.parent.mkdir(parents=True, exist_ok=True)
    streamed: list[dict] = []

    def on_row(row: dict) -> None:
        streamed.append(row)
        if jsonl is not None:
            append_jsonl(jsonl, row)

    folder, temp = _workdir(workdir)
    try:
        with _sigterm_as_interrupt():
            rows = run_benchmark(specs, ArtifactCache(checkpoint, folder), settings, machine_info(device),
                                 on_row=on_row)
    except KeyboardInterrupt:
        # A run stopped by Ctrl-C or `timeout`: the reports still get every row known so far.
        rows = latest_rows(streamed)
        _write_reports(rows, markdown, json_path, csv_path, plot)
        raise fail(f"interrupted: the reports hold the {len(rows)} row(s) known so far (partial rows: rounds done)", 130) from None
    finally:
        if temp is not None:
            temp.cleanup()
    add_speedups(rows)
    print(_write_reports(rows, markdown, json_path, csv_path, plot))
    warning = noise_warning(rows)
    if warning:
        print(warning, file=sys.stderr)
    errors = [r for r in rows if r["status"] == "error"]
    if errors:
        raise fail(f"{len(errors)} runtime(s) failed: " + "; ".join(f"{r['runner']}: {r['reason']}" for r in errors), 1)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (e.g. from `timeout`) raises KeyboardInterrupt, so the rows known so far are written."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _write_reports(rows: list[dict], markdown: Path | None, json_path: Path | None, csv_path: Path | None,
                   plot: Path | None) -> str:
    """Write each report asked for (each whole or not at all) and return the markdown table."""
    table = bench_markdown(rows)
    if markdown:
        write_text_atomic(markdown, table)
    if json_path:
        write_json(json_path, rows)
    if csv_path:
        write_csv(csv_path, rows)
    if plot:
        plot_latency(plot, rows)
    return table


@parity_app.command()
@user_errors
def parity(
    checkpoint: CheckpointOpt = None,
    runtime: RuntimeOpt = "all",
    device: DeviceOpt = None,
    precision: PrecisionOpt = "fp32",
    shape: Annotated[str, typer.Option(help="HxW")] = "256x256",
    batch: Annotated[int, typer.Option(help="batch size")] = 1,
    threads: ThreadsOpt = None,
    compile_mode: CompileModeOpt = "default",
    cuda_graph: CudaGraphOpt = False,
    allow_emulated: EmulatedOpt = False,
    workdir: WorkdirOpt = None,
    markdown: MarkdownOpt = None,
    json_path: JsonOpt = None,
    inputs: Annotated[Path | None, typer.Option("--inputs", help="folder of real frames of one size: run each at full size (replaces --shape, --batch)")] = None,
    expected: Annotated[Path | None, typer.Option("--expected", help="with --inputs: folder of expected outputs under the same names (e.g. the authors' published results)")] = None,
    expected_min_psnr: Annotated[float, typer.Option(help="PSNR (dB) a runtime must reach against --expected")] = MIN_PSNR_VS_PUBLISHED_DB,
) -> None:
    """Compare every runtime with PyTorch fp32 on random inputs and real photos; exit 1 on any FAIL.

    With ``--inputs DIR --expected DIR`` it runs your frames and also checks each runtime against
    known-good outputs: "does my engine still reproduce the authors?" in one command.
    """
    device = _device(device)
    _set_threads(threads)
    height, width = parse_shape(shape)
    if expected is not None and inputs is None:
        raise DMPHNError("--expected needs --inputs (the frames those outputs were made from)")
    if expected is not None and not expected.is_dir():
        raise DMPHNError(f"--expected {expected} is not a folder")
    specs = _specs(runtime, device, precision, compile_mode, cuda_graph, allow_emulated)
    folder, temp = _workdir(workdir)
    try:
        cache = ArtifactCache(checkpoint, folder)
        if inputs is not None:
            rows = run_parity_on_frames(specs, cache, inputs, machine_info(device), expected, expected_min_psnr,
                                        threads=threads)
        else:
            rows = run_parity(specs, cache, batch, height, width, machine_info(device), threads=threads)
    finally:
        if temp is not None:
            temp.cleanup()
    table = parity_markdown(rows)
    print(table)
    if markdown:
        write_text_atomic(markdown, table)
    if json_path:
        write_json(json_path, rows)
    bad = [r for r in rows if r["status"] in ("fail", "error")]
    if bad:
        raise fail(f"{len(bad)} parity row(s) failed or errored", 1)


def bench_main() -> None:
    bench_app()


def parity_main() -> None:
    parity_app()
