"""Concurrency sweep and a small config search for a served model (after Triton's perf_analyzer
``--concurrency-range`` and model_analyzer).

* :func:`run_sweep`: one load test (:func:`benchmarks.loadtest.run_loadtest`) per concurrency
  level, one row each: throughput, p50/p90/p99, errors; :func:`plot_sweep` draws throughput
  against latency, one point per level.
* :func:`run_search`: for each point of a small grid of the repository's knobs (instances x
  preferred batch x max queue delay), reload the model with that config (Triton's model-control
  API, config given in the load request: the repository on disk is not touched) and sweep; the
  best point is the highest throughput whose p99 stays within the latency budget (if any).

Loops are bounded: at most :data:`MAX_LEVELS` levels up to :data:`MAX_CONCURRENCY` clients, at
most :data:`MAX_POINTS` grid points, and a bounded number of requests (or seconds) per level.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dmphn_core.errors import DMPHNError
from dmphn_core.fileio import atomic_path, write_text_atomic
from runtimes.base import Runner

from .loadtest import LoadSettings, run_loadtest
from .report import _fmt, _table

MAX_LEVELS = 16
MAX_CONCURRENCY = 128
MAX_POINTS = 16


def _ints(text: str, what: str, minimum: int) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise DMPHNError(f"{what} must be a comma list of whole numbers, got {text!r}") from None
    if not values or min(values) < minimum:
        raise DMPHNError(f"{what} must be numbers >= {minimum}, got {text!r}")
    return list(dict.fromkeys(values))


def parse_concurrency(text: str) -> list[int]:
    """``"1,2,4,8"`` or ``"start:end[:step]"`` (end included, step added, as perf_analyzer) -> levels."""
    if ":" in text:
        try:
            parts = [int(part) for part in text.split(":")]
        except ValueError:
            raise DMPHNError(f"--concurrency start:end:step must be whole numbers, got {text!r}") from None
        if len(parts) not in (2, 3) or parts[0] < 1 or parts[1] < parts[0] or (len(parts) == 3 and parts[2] < 1):
            raise DMPHNError(f"--concurrency start:end[:step] needs 1 <= start <= end and step >= 1, got {text!r}")
        levels = list(range(parts[0], parts[1] + 1, parts[2] if len(parts) == 3 else 1))
    else:
        levels = _ints(text, "--concurrency", 1)
    if len(levels) > MAX_LEVELS or max(levels) > MAX_CONCURRENCY:
        raise DMPHNError(f"--concurrency {text!r}: at most {MAX_LEVELS} levels of up to {MAX_CONCURRENCY} clients")
    return levels


def run_sweep(make_client: Callable[[], Runner], levels: Iterable[int], *, requests: int | None,
              duration_s: float | None, batch: int, height: int, width: int, reference: Runner | None = None,
              tolerance=None, progress: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """One load-test row per concurrency level (``concurrency`` = clients). With ``requests``, each
    level sends at least two per client, so every client is measured more than once."""
    rows = []
    for level in levels:
        per_level = max(requests, 2 * level) if requests is not None else None
        settings = LoadSettings(clients=level, requests=per_level, duration_s=duration_s, batch=batch)
        summary, _ = run_loadtest(make_client, settings, height, width, reference=reference, tolerance=tolerance)
        rows.append({"concurrency": level, **summary})
        progress(f"  concurrency {level:3d}: {_fmt(summary.get('images_per_s'))} img/s, p50 {_fmt(summary.get('p50_ms'))} ms, "
                 f"p99 {_fmt(summary.get('p99_ms'))} ms, {summary['errors']} errors")
    return rows


def sweep_markdown(rows: list[dict[str, Any]]) -> str:
    header = ["config", "protocol", "concurrency", "sent", "ok", "errors", "img/s", "p50 ms", "p90", "p99", "result"]
    lines = [[r.get("config", "as served"), r.get("protocol", "?"), str(r["concurrency"]), str(r["sent"]), str(r["ok"]),
              str(r["errors"]), *(_fmt(r.get(k)) for k in ("images_per_s", "p50_ms", "p90_ms", "p99_ms")),
              "ok" if r["status"] == "ok" else "**FAIL**"] for r in rows]
    return _table(header, lines) + "\n"


def plot_sweep(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Throughput (x) against p50 latency (y, p99 dashed), one line per config and protocol, points = concurrency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r.get("ok") and r.get("p50_ms") is not None]
    if not ok:
        raise DMPHNError("no level answered any request: nothing to plot")
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for series in dict.fromkeys((r.get("config", "as served"), r.get("protocol", "?")) for r in ok):
        points = sorted((r for r in ok if (r.get("config", "as served"), r.get("protocol", "?")) == series),
                        key=lambda r: r["concurrency"])
        xs = [r["images_per_s"] for r in points]
        line, = ax.plot(xs, [r["p50_ms"] for r in points], marker="o", label=f"{series[0]} {series[1]} p50")
        ax.plot(xs, [r["p99_ms"] for r in points], linestyle="--", color=line.get_color(), alpha=0.6,
                label=f"{series[0]} {series[1]} p99")
        for r in points:
            ax.annotate(str(r["concurrency"]), (r["images_per_s"], r["p50_ms"]), fontsize=7,
                        textcoords="offset points", xytext=(3, 3))
    ax.set_xlabel("throughput, images/s")
    ax.set_ylabel("latency per request, ms")
    ax.set_title(f"concurrency sweep (point labels: concurrent clients), {ok[0]['height']}×{ok[0]['width']}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


# -- config search ---------------------------------------------------------------------


@dataclass(frozen=True)
class GridPoint:
    instances: int
    #: one preferred batch size for the dynamic batcher (0: none, the batcher takes what is queued)
    preferred_batch: int
    queue_delay_us: int

    @property
    def label(self) -> str:
        return f"{self.instances}x inst, pref {self.preferred_batch or '-'}, delay {self.queue_delay_us} us"


def parse_grid(instances: str, preferred_batch: str, queue_delay_us: str, max_batch: int) -> list[GridPoint]:
    points = [GridPoint(i, p, d) for i in _ints(instances, "--instances", 1)
              for p in _ints(preferred_batch, "--preferred-batch", 0) for d in _ints(queue_delay_us, "--queue-delay-us", 0)]
    too_big = sorted({p.preferred_batch for p in points if p.preferred_batch > max_batch})
    if too_big:
        raise DMPHNError(f"--preferred-batch {too_big} exceeds the model's max_batch_size {max_batch}")
    if len(points) > MAX_POINTS:
        raise DMPHNError(f"the grid has {len(points)} points; at most {MAX_POINTS} (fewer values per knob)")
    return points


def configure(base, point: GridPoint):
    """A copy of the ``ModelConfig`` message ``base`` with ``point``'s knobs."""
    config = copy.deepcopy(base)
    if not config.instance_group:
        config.instance_group.add()
    config.instance_group[0].count = point.instances
    del config.dynamic_batching.preferred_batch_size[:]
    if point.preferred_batch:
        config.dynamic_batching.preferred_batch_size.append(point.preferred_batch)
    config.dynamic_batching.max_queue_delay_microseconds = point.queue_delay_us
    return config


def run_search(points: list[GridPoint], base_config, load: Callable[[Any], None], sweep: Callable[[], list[dict[str, Any]]],
               *, p99_budget_ms: float | None = None, progress: Callable[[str], None] = print) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """``load(config)`` then ``sweep()`` per grid point; returns (every row, the best row or None).

    Best: the highest images/s of an error-free level whose p99 is within ``p99_budget_ms``.
    """
    rows: list[dict[str, Any]] = []
    for point in points:
        progress(f"config {point.label}: reloading")
        load(configure(base_config, point))
        for row in sweep():
            rows.append({"config": point.label, "instances": point.instances, "preferred_batch": point.preferred_batch,
                         "queue_delay_us": point.queue_delay_us, **row})
    eligible = [r for r in rows if r["status"] == "ok" and r.get("images_per_s")
                and (p99_budget_ms is None or r["p99_ms"] <= p99_budget_ms)]
    best = max(eligible, key=lambda r: r["images_per_s"], default=None)
    return rows, best


def write_best_config(path: str | Path, base_config, best: dict[str, Any], table: str) -> None:
    """The best point's config.pbtxt, headed by the table that chose it (as # comments)."""
    from google.protobuf import text_format

    point = GridPoint(best["instances"], best["preferred_batch"], best["queue_delay_us"])
    header = [f"best of the search: {point.label} at concurrency {best['concurrency']}: "
              f"{best['images_per_s']:.2f} img/s, p99 {best['p99_ms']:.1f} ms", "", *table.strip().splitlines()]
    text = "".join(f"# {line}\n" for line in header) + text_format.MessageToString(configure(base_config, point))
    write_text_atomic(path, text)


def reload_model(http_url: str, model_name: str, config, timeout_s: float = 300.0) -> None:
    """Load ``model_name`` again with ``config`` (a ModelConfig message) through Triton's model-control API.

    The server must run with ``--model-control-mode=explicit`` (``dmphn-loadtest --search`` starts it so).
    """
    import tritonclient.http as httpclient
    from google.protobuf import json_format
    from tritonclient.utils import InferenceServerException

    client = httpclient.InferenceServerClient(http_url, connection_timeout=timeout_s, network_timeout=timeout_s)
    try:
        client.load_model(model_name, config=json_format.MessageToJson(config, preserving_proto_field_name=True))
        ready = client.is_model_ready(model_name)
        loaded = client.get_model_config(model_name)  # what the server runs now, to confirm the knobs took
    except InferenceServerException as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DMPHNError(f"reloading {model_name} failed: {first} (a server of --no-start must run with "
                         "--model-control-mode=explicit)") from None
    finally:
        client.close()
    if not ready:
        raise DMPHNError(f"{model_name} is not ready after reloading it with the new config")
    want = (config.instance_group[0].count, config.dynamic_batching.max_queue_delay_microseconds)
    got = (loaded["instance_group"][0]["count"], int(loaded["dynamic_batching"].get("max_queue_delay_microseconds", 0)))
    if got != want:
        raise DMPHNError(f"{model_name} reloaded with instances/queue delay {got}, not the asked {want}")
