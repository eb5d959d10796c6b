"""Reports people can read (markdown), parse (JSON, CSV) and look at (PNG)."""

from __future__ import annotations

import csv
import io
import math
import os
import statistics
from pathlib import Path
from typing import Any

from dmphn_core.fileio import atomic_path, strict_json, write_text_atomic

from .timing import ROUND_AGREEMENT_LIMIT

BASELINE_RUNTIME = "torch-ref"


#: A row is flagged "noisy" when p50/min or p90/p50 exceeds this: on an idle machine the
#: repeated calls of one runtime agree within a few per cent, so a larger spread means the
#: machine was busy and the row's p50 (and any ratio built on it) cannot be trusted.
SPREAD_LIMIT = 1.3

#: Why "vs ref" is left empty for one-level models (DMPHN-1 cuts the image into one patch).
SAME_COMPUTATION = "n/a: one patch, so the per-patch reference runs the same computation"


def add_speedups(rows: list[dict[str, Any]]) -> None:
    """Add ``speedup_vs_ref``: the per-patch fp32 reference's p50 over this row's, same run,
    same device, batch and shape (so every ratio compares numbers taken side by side).

    For a one-level model the per-patch and static forms are the same computation, so the
    ratio would only measure noise: ``speedup_vs_ref`` is None and ``speedup_vs_ref_note`` says why.
    With two or more rounds also ``speedup_vs_ref_rounds`` (the ratio round by round, reference and
    row timed in the same round) and their median ``speedup_vs_ref_round_median``: the headline pairs each
    row's best round with the reference's best, which under drifting load may be different rounds.
    Also flags noisy rows (see ``flag_spread``).
    """
    flag_spread(rows)
    baselines = {
        (r["device"], r["batch"], r["height"], r["width"]): r
        for r in rows
        if r["runtime"] == BASELINE_RUNTIME and r["precision"] == "fp32" and r.get("status") == "ok"
    }
    for row in rows:
        if row.get("status") != "ok":
            continue
        if row.get("levels") == 1:
            row["speedup_vs_ref"] = None
            row["speedup_vs_ref_note"] = SAME_COMPUTATION
            continue
        base = baselines.get((row["device"], row["batch"], row["height"], row["width"]))
        if base:
            row["speedup_vs_ref"] = base["p50_ms"] / row["p50_ms"]
            ratios = round_ratios(base, row)
            if ratios is not None:
                row["speedup_vs_ref_rounds"] = ratios
                row["speedup_vs_ref_round_median"] = statistics.median(ratios)


def round_ratios(numerator: dict[str, Any], denominator: dict[str, Any]) -> list[float] | None:
    """``numerator``'s round medians over ``denominator``'s, round by round (rows timed in the same
    rounds); None unless both rows have the same number of rounds, at least two."""
    top, bottom = numerator.get("round_p50_ms") or [], denominator.get("round_p50_ms") or []
    if len(top) < 2 or len(top) != len(bottom):
        return None
    return [a / b for a, b in zip(top, bottom)]


def flag_spread(rows: list[dict[str, Any]], limit: float = SPREAD_LIMIT) -> None:
    """Add ``p50_over_min``, ``p90_over_p50`` and ``noisy`` (either ratio above ``limit``) to ok rows."""
    for row in rows:
        if row.get("status") != "ok" or not row.get("min_ms") or not row.get("p50_ms"):
            continue
        row["p50_over_min"] = row["p50_ms"] / row["min_ms"]
        row["p90_over_p50"] = row["p90_ms"] / row["p50_ms"]
        row["noisy"] = row["p50_over_min"] > limit or row["p90_over_p50"] > limit


def noise_warning(rows: list[dict[str, Any]], limit: float = SPREAD_LIMIT) -> str | None:
    """Lines naming the noisy rows, the rows whose rounds disagree and a load above the thread
    count, or None when every timed row is steady."""
    lines = []
    noisy = [r for r in rows if r.get("noisy")]
    if noisy:
        names = ", ".join(
            f"{r['runner']} {r['height']}x{r['width']} (p50/min {r['p50_over_min']:.2f}, p90/p50 {r['p90_over_p50']:.2f})"
            for r in noisy
        )
        lines.append(f"warning: {len(noisy)} row(s) with a large spread (p50/min or p90/p50 > {limit}): {names}; "
                     "the machine was probably busy, so their p50 and 'vs ref' mislead; rerun on an idle machine "
                     "or with more --iters")
    disagree = [r for r in rows if r.get("rounds_disagree")]
    if disagree:
        names = ", ".join(f"{r['runner']} {r['height']}x{r['width']} ({r['round_spread']:.2f})" for r in disagree)
        lines.append(f"warning: the rounds disagree (slowest round median / fastest > {ROUND_AGREEMENT_LIMIT}) "
                     f"for {names}: load came and went during the run; rerun on an idle machine")
    loaded = next((r for r in rows if r.get("load_high")), None)
    if loaded:
        lines.append(f"warning: {_load_text(loaded)}")
    return "\n".join(lines) or None


def _load_text(row: dict[str, Any]) -> str:
    """The 1-min load average around each round, and whether it exceeded the thread count."""
    pairs = "; ".join(f"{start:.2f}→{end:.2f}" for start, end in row.get("load_1min", []))
    threads = row.get("threads") or row.get("machine", {}).get("torch_threads")
    verdict = (f"above the {threads} thread(s) this run used: something else ran, its numbers are a busy machine's"
               if row.get("load_high") else f"never above the {threads} thread(s) this run used")
    return f"1-min load average at the start→end of each round: {pairs} ({verdict})"


def _fmt(value: Any, digits: int = 2, style: str = "f") -> str:
    """``value`` for a table cell: fixed point (``style="f"``) or scientific (``"e"``)."""
    if value is None:
        return "–"
    if isinstance(value, float):
        if math.isinf(value):
            return "inf"
        if math.isnan(value):
            return "nan"
        if style == "e":
            return f"{value:.{digits}e}"
        return f"{value:.{digits}f}" if abs(value) < 1e5 else f"{value:.3g}"
    return str(value)


def _table(header: list[str], lines: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return "\n".join(out)


def machine_block(machine: dict[str, Any]) -> str:
    keys = ["date", "cpu", "cpu_cores", "cpu_clock_ghz", "torch_threads", "gpu", "cuda", "torch", "onnxruntime", "tensorrt", "openvino",
            "nncf", "python"]
    parts = [f"{k}: {machine[k]}" for k in keys if machine.get(k) is not None]
    features = machine.get("cpu_features")
    if features:  # what decides reduced-precision speed on a CPU: say what this one has and lacks
        parts.insert(3, "ISA: " + " ".join(f"{name}{'+' if present else '-'}" for name, present in features.items()))
    return "Machine — " + "; ".join(parts) + f"\n\nCommand: `{machine.get('command', '?')}`"


def _vs_ref(row: dict[str, Any]) -> str:
    if row.get("speedup_vs_ref_note"):
        return "n/a"
    if not row.get("speedup_vs_ref"):
        return ""
    per_round = row.get("speedup_vs_ref_round_median")
    return _fmt(row["speedup_vs_ref"]) + "×" + (f" ({_fmt(per_round)}×)" if per_round is not None else "")


def _status(row: dict[str, Any]) -> str:
    if row.get("status") == "partial":
        return f"partial: {row.get('rounds')} of {row.get('rounds_planned')} rounds"
    if row.get("status") != "ok":
        return f"{row.get('status')}: {row.get('reason', '')}"
    flags = []
    if row.get("noisy"):
        flags.append(f"**noisy** (p50/min {row['p50_over_min']:.2f}, p90/p50 {row['p90_over_p50']:.2f})")
    if row.get("floor_note", "").startswith("beats"):
        flags.append(f"**beats floor** ({row['floor_note']})")
    if row.get("rounds_disagree"):
        flags.append(f"**rounds disagree** ({row['round_spread']:.2f})")
    return ", ".join(["ok", *flags])


def _rounds(row: dict[str, Any]) -> str:
    """The round medians and their spread, e.g. "101 / 99.2 / 99.8 (1.02)"."""
    medians = row.get("round_p50_ms")
    if not medians:
        return ""
    return " / ".join(_fmt(m, 3 if m < 10 else 1) for m in medians) + f" ({row['round_spread']:.2f})"


def weights_line(rows: list[dict[str, Any]]) -> str:
    weights = list(dict.fromkeys(str(r["weights"]) for r in rows if r.get("weights")))
    return f"\n\nWeights: {'; '.join(weights)}" if weights else ""


def bench_markdown(rows: list[dict[str, Any]]) -> str:
    header = ["runner", "batch", "H×W", "p50 ms", "round medians (spread)", "mean", "p90", "p99", "min", "img/s",
              "MP/s", "peak MB", "floor ms", "×floor", "vs ref", "build s", "status"]
    lines = []
    for r in rows:
        ok = r.get("status") in ("ok", "partial")
        lines.append([
            str(r.get("runner")), str(r.get("batch")), f"{r.get('height')}×{r.get('width')}",
            _fmt(r.get("p50_ms")) if ok else "", _rounds(r) if ok else "",
            *(_fmt(r.get(k)) if ok else "" for k in ("mean_ms", "p90_ms", "p99_ms", "min_ms")),
            _fmt(r.get("images_per_s")) if ok else "", _fmt(r.get("megapixels_per_s")) if ok else "",
            _fmt(r.get("peak_mem_mb"), 0) if ok else "", _fmt(r.get("floor_ms")) if ok else "",
            _fmt(r.get("floor_ratio"), 1) if ok else "",
            _vs_ref(r),
            _fmt(r.get("build_s") if r.get("build_s") is not None else r.get("compile_s"), 1) if ok else "",
            _status(r),
        ])
    machine = next((r["machine"] for r in rows if r.get("machine")), {})
    notes = (
        "Rows are timed round-robin (every row once per round); p50: the min of the row's round medians, "
        f"spread: slowest round median over fastest, **rounds disagree** above {ROUND_AGREEMENT_LIMIT} (load came "
        "and went). mean/p90/p99/min: every call of every round, ms (CUDA: CUDA events; CPU: wall clock). "
        "floor: the model's direct-convolution FLOPs at the peak rate of the widest instruction set this "
        "device has for the row's precision (basis below); ×floor: p50 over that floor, below 1 only with fewer "
        "multiplies than direct convolution (Winograd: up to 2.25x), flagged **beats floor** below 1/2.25. vs ref: p50 of the per-patch PyTorch reference (fp32) over this row's, same run; in brackets the median of the same ratio taken round by round (both medians from the same round): when the load drifts, the steadier figure. "
        "peak MB: peak resident (CPU) or device (CUDA) memory above the level before loading. "
        "build s: artifact export/compile time (torch.compile: first-call compile), not in the latency. "
        f"noisy: p50/min or p90/p50 above {SPREAD_LIMIT} (a busy machine); do not trust that row's ratios."
    )
    if any(r.get("speedup_vs_ref_note") for r in rows):
        notes += f" vs ref {SAME_COMPUTATION}."
    bases = dict.fromkeys(f"{r['device']} {r['precision']}: {r['floor_basis']}" for r in rows if r.get("floor_basis"))
    if bases:
        notes += "\n\nFloor basis — " + "; ".join(bases) + "."
    timed = next((r for r in rows if r.get("load_1min")), None)
    if timed:
        notes += f"\n\nLoad: {_load_text(timed)}."
    return f"{machine_block(machine)}{weights_line(rows)}\n\n{_table(header, lines)}\n\n{notes}\n"


def parity_markdown(rows: list[dict[str, Any]]) -> str:
    header = ["runner", "input", "shape", "max abs", "p99 abs", "median abs", "rel err", "PSNR dB", "tolerance", "result"]
    lines = []
    for r in rows:
        shape = f"{r['batch']}×3×{r['height']}×{r['width']}"
        if r.get("status") in ("skipped", "error"):
            lines.append([r["runner"], "–", shape, "", "", "", "", "", "", f"{r['status']}: {r.get('reason', '')}"])
            continue
        against = {"pytorch-fp32": "", "expected": " vs expected"}.get(r.get("against", ""), "")
        lines.append([
            r["runner"], r["input"] + against, shape, f"{r['max_abs']:.2e}", _fmt(r.get("p99_abs"), 2, "e"),
            _fmt(r.get("median_abs"), 2, "e"), _fmt(r.get("rel_err"), 2, "e"),
            _fmt(r["psnr_db"]), r["tolerance"], "PASS" if r["status"] == "pass" else "**FAIL**",
        ])
    machine = next((r["machine"] for r in rows), {})
    notes = "Reference: eager static-shape PyTorch, fp32, TF32 off, on the runner's device. PSNR between outputs (range 1)."
    expected = next((r["expected"] for r in rows if r.get("expected")), None)
    if expected:
        notes += (f" Rows \"vs expected\": the runtime's output clipped to [0, 1] against the 8-bit file of the same name "
                  f"in {expected}.")
    return f"{machine_block(machine)}{weights_line(rows)}\n\n{_table(header, lines)}\n\n{notes}\n"


def write_json(path: Path, rows: list[dict[str, Any]]) -> None:
    """A JSON list of rows, each with its ``runtime``, the weights and the machine it ran on.

    Strict JSON: a PSNR of identical outputs (inf) is written as null.
    """
    write_text_atomic(path, strict_json(rows, indent=2) + "\n")


def append_jsonl(path: Path, row: dict[str, Any]) -> None:
    """Append ``row`` as one strict-JSON line (one write, flushed), so a run cut short keeps every line written."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(strict_json(row) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def latest_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last row of each (runner, batch, height, width), in first-seen order: what a stream of
    partial and final rows (``--jsonl``) says when it stops."""
    latest: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        latest[(row.get("runner"), row.get("batch"), row.get("height"), row.get("width"))] = row
    return list(latest.values())


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Flat CSV: the machine dict is left out (it is the same for every row; see the JSON)."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k != "machine" and k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


def plot_latency(path: Path, rows: list[dict[str, Any]]) -> None:
    """Grouped bars: p50 latency (log scale) by runner, one group per batch and shape; p90 as whisker."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    ok = [r for r in rows if r.get("status") == "ok"]
    if not ok:
        return
    groups = list(dict.fromkeys((r["batch"], r["height"], r["width"]) for r in ok))
    runners = list(dict.fromkeys(r["runner"] for r in ok))
    width = 0.8 / len(runners)
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(groups) * max(1, len(runners) / 3)), 4.5))
    for i, runner in enumerate(runners):
        xs, p50, p90 = [], [], []
        for g, (batch, height, width_px) in enumerate(groups):
            match = [r for r in ok if r["runner"] == runner and (r["batch"], r["height"], r["width"]) == (batch, height, width_px)]
            if match:
                xs.append(g + (i - (len(runners) - 1) / 2) * width)
                p50.append(match[0]["p50_ms"])
                p90.append(match[0]["p90_ms"] - match[0]["p50_ms"])
        ax.bar(xs, p50, width, yerr=[[0] * len(p90), p90], capsize=2, label=runner)
    ax.set_xticks(range(len(groups)), [f"b{b} {h}×{w}" for b, h, w in groups])
    ax.set_yscale("log")
    # plain numbers on the log axis: "120", not "1.2x10^2"
    ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.set_ylabel("latency p50, ms (whisker: p90)")
    machine = ok[0]["machine"]
    ax.set_title(f"{ok[0]['model']} — {machine.get('gpu') or machine.get('cpu', '')}, {machine.get('date', '')}", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(axis="y", alpha=0.3, which="both")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
