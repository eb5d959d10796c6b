"""``dmphn-bench --profile``: after timing, one profiled call per timed row, as a top-N table.

Kept apart from the timing loop (:mod:`benchmarks.bench`) on purpose: the profiler slows the
call it watches, so its call is never one of the timed ones; it runs after a row is timed, on the
same artifact and inputs, and its table is attached to the row (``row["profile"]``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from dmphn_core.errors import RuntimeUnavailable
from runtimes.compare import first_line
from runtimes.profiling import DEFAULT_TOP

from .bench import BenchSettings, bench_inputs
from .prepare import ArtifactCache, RunnerSpec, make_runner


def add_profiles(
    rows: list[dict[str, Any]],
    specs: Iterable[RunnerSpec],
    cache: ArtifactCache,
    settings: BenchSettings,
    top: int = DEFAULT_TOP,
    progress: Callable[[str], None] = print,
) -> None:
    """Attach ``profile`` (see :meth:`runtimes.profiling.Profile.to_dict`) to every ok row, or
    ``profile_skipped`` with the reason where the runtime has no profiler hook or it failed."""
    by_label = {spec.label: spec for spec in specs}
    for row in rows:
        spec = by_label.get(row.get("runner", ""))
        if row.get("status") != "ok" or spec is None:
            continue
        batch, height, width = row["batch"], row["height"], row["width"]
        progress(f"prof  {spec.label} batch {batch} {height}x{width}")
        try:
            runner, _ = make_runner(spec, cache, batch, height, width, settings.threads)
            with runner:
                profile = runner.profile(bench_inputs(batch, height, width, spec.device, settings))
        except RuntimeUnavailable as exc:
            row["profile_skipped"] = str(exc)
            progress(f"      no profile: {exc}")
            continue
        except Exception as exc:  # noqa: BLE001 - a failed profile must not lose the timed rows
            row["profile_skipped"] = f"profiling failed: {first_line(exc)}"
            progress(f"      {row['profile_skipped']}")
            continue
        row["profile"] = profile.to_dict(top)


def profile_markdown(rows: list[dict[str, Any]]) -> str:
    """One section per profiled row: the top ops/layers, then the time per kernel."""
    parts: list[str] = []
    for row in rows:
        title = f"### {row['runner']} batch {row['batch']} {row['height']}×{row['width']}"
        if "profile_skipped" in row:
            parts.append(f"{title}\n\nno profile: {row['profile_skipped']}\n")
        if "profile" not in row:
            continue
        profile = row["profile"]
        lines = [
            title, "",
            f"{profile['tool']}: profiled call {profile['wall_ms']:.1f} ms wall, {profile['op_count']} ops/layers "
            f"summing to {profile['ops_total_ms']:.1f} ms (timed p50 {row['p50_ms']:.1f} ms).", "",
            "| # | op / layer | kernel | precision | calls | ms | share |",
            "| ---: | --- | --- | --- | ---: | ---: | ---: |",
        ]
        lines += [
            f"| {rank} | `{op['name']}` | `{op['kernel']}` | {op['precision'] or '–'} | {op['calls']} | "
            f"{op['total_ms']:.2f} | {op['share']:.1%} |"
            for rank, op in enumerate(profile["top"], start=1)
        ]
        lines += ["", "| kernel | precision | calls | ms | share |", "| --- | --- | ---: | ---: | ---: |"]
        lines += [
            f"| `{k['kernel']}` | {k['precision'] or '–'} | {k['calls']} | {k['total_ms']:.2f} | {k['share']:.1%} |"
            for k in profile["by_kernel"][: len(profile["top"])]
        ]
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)
