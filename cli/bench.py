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
from benchmarks.layers import layers_markdown, run_layers_for_specs
from benchmarks.machine import machine_info
from benchmarks.parity import load_frames, run_parity, run_parity_loaded, run_parity_on_frames
from benchmarks.prepare import ArtifactCache, RunnerSpec, parse_precisions, parse_runtimes, parse_shape
from benchmarks.profile import add_profiles, profile_markdown
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
from benchmarks.saved_outputs import save_outputs as save_outputs_to
from benchmarks.throughput import ThroughputSettings, add_gains, parse_mode, run_throughput, throughput_markdown
from cli.common import fail, new_app, user_errors
from dmphn_core.authors import MIN_PSNR_VS_PUBLISHED_DB
from dmphn_core.errors import DMPHNError
from dmphn_core.fileio import write_text_atomic
from dmphn_core.precision import PRECISIONS
from runtimes import runtime_names
from runtimes.profiling import DEFAULT_TOP
from runtimes.torch_compile import COMPILE_MODES
from runtimes.torch_utils import cudnn_benchmark as cudnn_benchmark_mode

bench_app = new_app("Latency of every runtime on the same inputs, side by side.")
parity_app = new_app("Parity of every runtime against the PyTorch fp32 reference.")

CheckpointOpt = Annotated[Path | None, typer.Option("--checkpoint", "-c", help="checkpoint (default: the shipped demo model)")]
RuntimeOpt = Annotated[str, typer.Option("--runtime", "-r", help=f"comma list of {', '.join(runtime_names())}, or 'all'")]
DeviceOpt = Annotated[str | None, typer.Option(help="cpu or cuda (default: cuda when available)")]
PrecisionOpt = Annotated[str, typer.Option(help=f"comma list of {', '.join(PRECISIONS)} (pairs a runtime cannot do are skipped rows)")]
WorkdirOpt = Annotated[Path | None, typer.Option(help="keep exported artifacts here, reused by later runs with the same weights, toolkit and recipe (hashed; default: a temporary folder)")]
CompileModeOpt = Annotated[str, typer.Option(help=f"torch.compile mode: {', '.join(COMPILE_MODES)}")]
CudaGraphOpt = Annotated[bool, typer.Option("--cuda-graph", help="capture TensorRT / torch.compile runs in a CUDA graph")]
EmulatedOpt = Annotated[bool, typer.Option("--allow-emulated", help="also run pairs this machine only emulates (bf16 in PyTorch on a CPU without bf16 instructions: about 10x slower than fp32); skipped rows otherwise")]
ThreadsOpt = Annotated[int | None, typer.Option(help="CPU threads for torch, ONNX Runtime and OpenVINO")]
MarkdownOpt = Annotated[Path | None, typer.Option("--markdown", help="write the table as markdown")]
JsonOpt = Annotated[Path | None, typer.Option("--json", help="write a JSON list of rows")]
CudnnBenchmarkOpt = Annotated[bool, typer.Option("--cudnn-benchmark", help="let cuDNN time its convolution algorithms per shape (torch.backends.cudnn.benchmark; CUDA torch runtimes)")]
ChannelsLastOpt = Annotated[bool | None, typer.Option("--channels-last/--no-channels-last", help="NHWC weights and input in the torch and compile runtimes (default: on for CPU bf16/fp16 only)")]
FreezingOpt = Annotated[bool, typer.Option("--freezing", help="torch.compile: fold the weights into the graph as constants (Inductor freezing)")]


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
           allow_emulated: bool = False, channels_last: bool | None = None, freezing: bool = False) -> list[RunnerSpec]:
    if compile_mode not in COMPILE_MODES:
        raise DMPHNError(f"unknown compile mode {compile_mode!r}; use one of {', '.join(COMPILE_MODES)}")
    runtimes = parse_runtimes(runtime)
    specs = [
        RunnerSpec(key, device, prec, compile_mode, cuda_graph, allow_emulated, channels_last, freezing)
        for key in runtimes
        for prec in parse_precisions(precision)
    ]
    reasons = [spec.unavailable_reason() for spec in specs]
    if runtime.strip() != "all" and all(reasons):
        # nothing asked for by name can run here: say why instead of printing an empty table.
        # Where some pairs can run, the others become skipped rows with their reasons.
        raise DMPHNError(f"{specs[0].label} cannot run here: {reasons[0]}")
    return specs


def _record_store(cache: Path | None):
    """``--record`` times the artifacts ``--runtime auto`` runs: those of the per-user cache."""
    from export.cache import ArtifactStore, artifact_cache_dir

    return ArtifactStore(artifact_cache_dir(cache), log=print)


def _record(rows: list[dict], artifacts: ArtifactCache, cache: Path | None, threads: int | None) -> None:
    """``--record``: the measured table of each size, in the cache, for ``--runtime auto`` here."""
    from export.cache import model_digest
    from export.speed_table import record_bench_rows, speed_table_dir

    for path in record_bench_rows(rows, model_digest(artifacts.model), speed_table_dir(cache), threads):
        print(f"recorded measured speeds: {path}")


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
    cudnn_benchmark: CudnnBenchmarkOpt = False,
    channels_last: ChannelsLastOpt = None,
    freezing: FreezingOpt = False,
    peak_tflops: Annotated[float | None, typer.Option(help="device ceiling for the roofline floor (default: measured)")] = None,
    workdir: WorkdirOpt = None,
    markdown: MarkdownOpt = None,
    json_path: JsonOpt = None,
    csv_path: Annotated[Path | None, typer.Option("--csv", help="write rows as CSV")] = None,
    plot: Annotated[Path | None, typer.Option(help="write a PNG plot of latency by runtime and shape")] = None,
    inputs: Annotated[Path | None, typer.Option("--inputs", help="time on these frames (the first `batch` of them) instead of random data; --shape defaults to their size")] = None,
    record: Annotated[bool, typer.Option("--record", help="time the artifact cache's artifacts and record each row's p50 there: --runtime auto and --precision auto then rank by it on this machine")] = False,
    cache: Annotated[Path | None, typer.Option(help="with --record: the cache folder", show_default="$DMPHN_CACHE or ~/.cache/dmphn")] = None,
    profile: Annotated[bool, typer.Option("--profile", help="after timing, profile one more call per row with the runtime's own profiler (torch family, ort, ov): top ops/layers, kernels, precisions")] = False,
    profile_top: Annotated[int, typer.Option(help="rows of each --profile table")] = DEFAULT_TOP,
    mode: Annotated[str, typer.Option(help="latency: one request at a time; throughput: also many frames through each runtime's own concurrency (rows with mode=throughput)")] = "latency",
    frames_count: Annotated[int, typer.Option("--frames", help="with --mode throughput: frames timed per row")] = 32,
    streams: Annotated[int | None, typer.Option(help="with --mode throughput: parallel streams (default: each runtime's choice)")] = None,
    prepare_only: Annotated[bool, typer.Option("--prepare-only", help="only build (export and verify) the artifacts into --workdir, time nothing: run it before a timed run, so that run only times")] = False,
    jsonl: Annotated[Path | None, typer.Option("--jsonl", help="append each row as one JSON line as soon as it is known (skipped/failed rows at once, a 'partial' row after each round, then the final row), so a run cut short keeps what finished")] = None,
) -> None:
    """Time runtimes on one set of inputs: mean/p50/p90/p99/min, throughput, memory, roofline."""
    device = _device(device)
    throughput = ThroughputSettings(frames_count, streams) if parse_mode(mode) == "throughput" else None
    if throughput is not None:
        throughput.check()
    frames = torch.from_numpy(np.concatenate([x for _, x in load_frames(inputs)])) if inputs is not None else None
    if frames is not None and not shape:
        shape = [f"{frames.shape[-2]}x{frames.shape[-1]}"]
    if warmup < 0 or iters < 1 or rounds < 1 or profile_top < 1:
        raise DMPHNError("--warmup must be >= 0, --iters, --rounds and --profile-top >= 1")
    _set_threads(threads)
    specs = _specs(runtime, device, precision, compile_mode, cuda_graph, allow_emulated, channels_last, freezing)
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
        row["cudnn_benchmark"] = cudnn_benchmark
        streamed.append(row)
        if jsonl is not None:
            append_jsonl(jsonl, row)

    folder, temp = _workdir(workdir)
    artifacts = ArtifactCache(checkpoint, folder, store=_record_store(cache) if record else None)
    stream_rows: list[dict] = []
    try:
        with _sigterm_as_interrupt(), cudnn_benchmark_mode(cudnn_benchmark):
            rows = run_benchmark(specs, artifacts, settings, machine_info(device), on_row=on_row)
            if profile:
                add_profiles(rows, specs, artifacts, settings, profile_top)
            if throughput is not None:
                stream_rows = run_throughput(
                    specs, artifacts, shapes=settings.shapes, batches=settings.batches, settings=throughput,
                    threads=threads, machine=machine_info(device), frames=frames.numpy() if frames is not None else None,
                    frames_label=settings.frames_label)
    except KeyboardInterrupt:
        # A run stopped by Ctrl-C or `timeout`: the reports still get every row known so far.
        rows = latest_rows(streamed)
        _write_reports(rows, stream_rows, markdown, json_path, csv_path, plot)
        raise fail(f"interrupted: the reports hold the {len(rows)} row(s) known so far (partial rows: rounds done)", 130) from None
    finally:
        if temp is not None:
            temp.cleanup()
    for row in rows:
        row["cudnn_benchmark"] = cudnn_benchmark
    add_speedups(rows)
    add_gains(rows, stream_rows)
    print(_write_reports(rows, stream_rows, markdown, json_path, csv_path, plot, profile))
    if record:
        _record(rows, artifacts, cache, threads)
    warning = noise_warning(rows)
    if warning:
        print(warning, file=sys.stderr)
    errors = [r for r in rows + stream_rows if r["status"] == "error"]
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


def _write_reports(rows: list[dict], stream_rows: list[dict], markdown: Path | None, json_path: Path | None,
                   csv_path: Path | None, plot: Path | None, profile: bool = False) -> str:
    """Write each report asked for (each whole or not at all) and return the markdown table;
    throughput-mode rows (``stream_rows``) go into the reports beside the latency rows."""
    table = (bench_markdown(rows) + (f"\n{throughput_markdown(stream_rows)}" if stream_rows else "")
             + (f"\n## Profiles\n\n{profile_markdown(rows)}" if profile else ""))
    if markdown:
        write_text_atomic(markdown, table)
    if json_path:
        write_json(json_path, rows + stream_rows)
    if csv_path:
        write_csv(csv_path, rows + stream_rows)
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
    cudnn_benchmark: CudnnBenchmarkOpt = False,
    channels_last: ChannelsLastOpt = None,
    freezing: FreezingOpt = False,
    workdir: WorkdirOpt = None,
    markdown: MarkdownOpt = None,
    json_path: JsonOpt = None,
    inputs: Annotated[Path | None, typer.Option("--inputs", help="folder of real frames of one size: run each at full size (replaces --shape, --batch)")] = None,
    expected: Annotated[Path | None, typer.Option("--expected", help="with --inputs: folder of expected outputs under the same names (e.g. the authors' published results)")] = None,
    expected_min_psnr: Annotated[float, typer.Option(help="PSNR (dB) a runtime must reach against --expected")] = MIN_PSNR_VS_PUBLISHED_DB,
    layers: Annotated[bool, typer.Option("--layers", help="compare every convolution's output and each level's features and residual with the fp32 reference (torch, ort, ov) and name the first point under the floor, instead of the final outputs")] = False,
    layer_min_psnr: Annotated[float | None, typer.Option(help="with --layers: the per-point PSNR floor (default: the precision's bar, 80 dB for fp32)")] = None,
    save_outputs: Annotated[Path | None, typer.Option("--save-outputs", help="also save every output (.npy) with a hashed manifest, to compare on another machine with --load-outputs")] = None,
    load_outputs: Annotated[Path | None, typer.Option("--load-outputs", help="compare outputs saved by --save-outputs (e.g. on a GPU host) with this machine's fp32 reference on the same inputs, instead of running runtimes")] = None,
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
    if layers and (expected is not None or save_outputs is not None or load_outputs is not None):
        raise DMPHNError("--layers compares intermediate points; run --expected, --save-outputs or --load-outputs apart")
    if save_outputs is not None and load_outputs is not None:
        raise DMPHNError("--save-outputs and --load-outputs do not go together")
    specs = [] if load_outputs is not None else _specs(runtime, device, precision, compile_mode, cuda_graph,
                                                       allow_emulated, channels_last, freezing)
    saved: list | None = [] if save_outputs is not None else None
    folder, temp = _workdir(workdir)
    try:
        cache = ArtifactCache(checkpoint, folder)
        with cudnn_benchmark_mode(cudnn_benchmark):
            if load_outputs is not None:
                rows = run_parity_loaded(load_outputs, cache, machine_info(device), inputs)
            elif layers:
                frames = load_frames(inputs) if inputs is not None else None
                rows = run_layers_for_specs(specs, cache, batch, height, width, machine_info(device), frames, threads,
                                            layer_min_psnr)
            elif inputs is not None:
                rows = run_parity_on_frames(specs, cache, inputs, machine_info(device), expected, expected_min_psnr,
                                            threads=threads, saved=saved)
            else:
                rows = run_parity(specs, cache, batch, height, width, machine_info(device), threads=threads, saved=saved)
    finally:
        if temp is not None:
            temp.cleanup()
    if saved is not None:
        print(f"saved {len(saved)} output(s): {save_outputs_to(save_outputs, saved, machine_info(device))}")
    table = layers_markdown(rows) if layers else parity_markdown(rows)
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
