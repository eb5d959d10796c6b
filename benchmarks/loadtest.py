"""Load test of a served model: N concurrent clients, a bounded number of requests or seconds.

Each client thread holds its own connection (a :class:`runtimes.triton.TritonRunner`) and
takes request tickets from a shared counter until the requests are spent or the time is up,
so every request sent is recorded exactly once: answered, or failed with the reason. A
failed request drops its connection and the next one reconnects, so a restarted server is
picked up without restarting the test. Every answer is checked: its shape must be the
input's, its values finite, and within tolerance of the local runner's output for the same
input (``reference``: e.g. ONNX Runtime on the repository's own ``model.onnx``).

Latency is wall clock per request at the client (queueing, transfer, batching and inference).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dmphn_core.errors import DMPHNError
from dmphn_core.fileio import write_text_atomic
from runtimes.base import Runner
from runtimes.compare import Tolerance, compare_outputs, tolerance_for

from .report import _fmt, _table, machine_block

#: After a request fails to connect, wait this long before the next one (no busy loop on a dead server).
RECONNECT_PAUSE_S = 0.05


@dataclass(frozen=True)
class LoadSettings:
    clients: int = 4
    #: total requests over all clients (None: until ``duration_s`` is up)
    requests: int | None = 200
    duration_s: float | None = None
    batch: int = 1
    #: distinct seeded inputs the requests cycle through (each has its local reference output)
    distinct_inputs: int = 8
    seed: int = 0

    def check(self) -> None:
        if self.clients < 1:
            raise DMPHNError(f"--clients must be at least 1, got {self.clients}")
        if self.requests is None and self.duration_s is None:
            raise DMPHNError("give a number of requests or a duration")
        if self.requests is not None and self.requests < 1:
            raise DMPHNError(f"--requests must be at least 1, got {self.requests}")
        if self.duration_s is not None and not self.duration_s > 0:
            raise DMPHNError(f"--duration must be positive, got {self.duration_s}")
        if self.batch < 1 or self.distinct_inputs < 1:
            raise DMPHNError("--batch and the number of distinct inputs must be at least 1")


@dataclass(frozen=True)
class RequestRecord:
    client: int
    ticket: int
    input_id: int
    start_s: float
    latency_ms: float
    ok: bool
    error: str | None = None
    max_abs: float | None = None
    psnr_db: float | None = None
    parity_ok: bool | None = None


def make_inputs(settings: LoadSettings, height: int, width: int) -> list[np.ndarray]:
    """``distinct_inputs`` seeded (B, 3, H, W) float32 arrays in [0, 1]."""
    rng = np.random.default_rng(settings.seed)
    return [rng.random((settings.batch, 3, height, width), dtype=np.float32) for _ in range(settings.distinct_inputs)]


class _Tickets:
    """Hands out request numbers until the count or the time runs out (thread-safe)."""

    def __init__(self, limit: int | None, deadline: float | None) -> None:
        self._next, self._limit, self._deadline = 0, limit, deadline
        self._lock = threading.Lock()
        self.stop = threading.Event()

    def take(self) -> int | None:
        with self._lock:
            if self.stop.is_set() or (self._limit is not None and self._next >= self._limit):
                return None
            if self._deadline is not None and time.monotonic() >= self._deadline:
                return None
            ticket, self._next = self._next, self._next + 1
            return ticket


def _short_reason(message: str, runner_name: str) -> str:
    message = message.removeprefix(f"{runner_name}: ")
    return message[:160]


def _client_loop(index: int, make_client: Callable[[], Runner], tickets: _Tickets, inputs: list[np.ndarray],
                 references: list[np.ndarray] | None, tolerance: Tolerance, records: list[RequestRecord],
                 origin: float) -> None:
    runner: Runner | None = None
    while (ticket := tickets.take()) is not None:
        input_id = ticket % len(inputs)
        x = inputs[input_id]
        begin = time.perf_counter()
        try:
            if runner is None:
                runner = make_client()
                runner.activate()
            y = runner.infer(x)
        except Exception as exc:  # noqa: BLE001 - every failure is recorded, none is raised
            latency = (time.perf_counter() - begin) * 1e3
            name = runner.name if runner is not None else ""
            reason = _short_reason((str(exc).strip().splitlines() or [type(exc).__name__])[0], name)
            records.append(RequestRecord(index, ticket, input_id, begin - origin, latency, False, reason))
            if runner is not None:
                runner.deactivate()
            runner = None  # reconnect on the next request
            time.sleep(RECONNECT_PAUSE_S)
            continue
        latency = (time.perf_counter() - begin) * 1e3
        if y.shape != x.shape or not np.isfinite(y).all():
            records.append(RequestRecord(index, ticket, input_id, begin - origin, latency, False,
                                         f"malformed reply: shape {y.shape}, finite {bool(np.isfinite(y).all())}"))
            continue
        record = RequestRecord(index, ticket, input_id, begin - origin, latency, True)
        if references is not None:
            comparison = compare_outputs(y, references[input_id], tolerance)
            record = RequestRecord(index, ticket, input_id, begin - origin, latency, True, None,
                                   comparison.max_abs, comparison.psnr_db, comparison.passed)
        records.append(record)
    if runner is not None:
        runner.deactivate()


def run_loadtest(
    make_client: Callable[[], Runner],
    settings: LoadSettings,
    height: int,
    width: int,
    *,
    reference: Runner | None = None,
    tolerance: Tolerance | None = None,
    on_start: Callable[[_Tickets], None] | None = None,
) -> tuple[dict[str, Any], list[RequestRecord]]:
    """Run the load; return ``(summary, records)``: one record per request sent, in ticket order.

    ``make_client()`` builds one (inactive) runner per client thread. ``reference`` (active or
    not) gives the local output each answer is compared with. ``on_start`` is called once the
    clients run (tests use it to kill the server mid-load).
    """
    settings.check()
    tolerance = tolerance or tolerance_for("fp32")
    inputs = make_inputs(settings, height, width)
    references = None
    if reference is not None:
        was_active = reference.is_active
        reference.activate()
        try:
            references, local_ms = [], []
            for x in inputs:
                begin = time.perf_counter()
                references.append(np.asarray(reference.infer(x)))
                local_ms.append((time.perf_counter() - begin) * 1e3)
        finally:
            if not was_active:  # a runner the caller activated stays active
                reference.deactivate()
    deadline = time.monotonic() + settings.duration_s if settings.duration_s else None
    tickets = _Tickets(settings.requests, deadline)
    records: list[RequestRecord] = []  # list.append is atomic under the GIL
    origin = time.perf_counter()
    threads = [
        threading.Thread(target=_client_loop, name=f"loadtest-client-{i}", daemon=True,
                         args=(i, make_client, tickets, inputs, references, tolerance, records, origin))
        for i in range(settings.clients)
    ]
    for thread in threads:
        thread.start()
    if on_start is not None:
        on_start(tickets)
    for thread in threads:
        thread.join()
    wall_s = time.perf_counter() - origin
    records.sort(key=lambda r: r.ticket)
    summary = summarize(records, settings, height, width, wall_s, tolerance, references is not None)
    if references is not None:
        # the same model run in this process, one call at a time, just before the load: what
        # serving adds on top of the runner on this machine, as busy as it is right now
        summary["local_p50_ms"] = float(np.percentile(local_ms, 50))
    return summary, records


def summarize(records: list[RequestRecord], settings: LoadSettings, height: int, width: int, wall_s: float,
              tolerance: Tolerance, with_parity: bool) -> dict[str, Any]:
    """Counts, latency percentiles of the answered requests, throughput, worst parity."""
    ok = [r for r in records if r.ok]
    errors = Counter(r.error for r in records if not r.ok)
    latencies = np.asarray([r.latency_ms for r in ok], dtype=np.float64)
    summary: dict[str, Any] = {
        "clients": settings.clients, "batch": settings.batch, "height": height, "width": width,
        "requests_limit": settings.requests, "duration_limit_s": settings.duration_s,
        "sent": len(records), "ok": len(ok), "errors": sum(errors.values()),
        "error_kinds": dict(errors.most_common()),
        "wall_s": wall_s,
        "requests_per_s": len(ok) / wall_s if wall_s > 0 else None,
        "images_per_s": len(ok) * settings.batch / wall_s if wall_s > 0 else None,
    }
    if len(ok):
        summary.update(
            p50_ms=float(np.percentile(latencies, 50)), p90_ms=float(np.percentile(latencies, 90)),
            p99_ms=float(np.percentile(latencies, 99)), mean_ms=float(latencies.mean()),
            min_ms=float(latencies.min()), max_ms=float(latencies.max()),
        )
    if with_parity:
        checked = [r for r in ok if r.parity_ok is not None]
        psnr = min((r.psnr_db for r in checked), default=None)
        summary["parity"] = {
            "tolerance": tolerance.describe(),
            "checked": len(checked),
            "mismatches": sum(not r.parity_ok for r in checked),
            "max_abs": max((r.max_abs for r in checked), default=None),
            # inf (served == local, bit for bit) is not JSON: null with identical=true
            "min_psnr_db": None if psnr is None or math.isinf(psnr) else psnr,
            "identical": bool(checked) and psnr is not None and math.isinf(psnr),
        }
    parity_bad = with_parity and summary["parity"]["mismatches"] > 0
    summary["status"] = "ok" if summary["errors"] == 0 and not parity_bad and len(ok) > 0 else "fail"
    return summary


def loadtest_markdown(rows: list[dict[str, Any]]) -> str:
    header = ["protocol", "clients", "batch", "H×W", "sent", "ok", "errors", "p50 ms", "p90", "p99", "mean",
              "req/s", "img/s", "local p50 ms", "parity max abs", "min PSNR dB", "result"]
    lines = []
    for r in rows:
        parity = r.get("parity") or {}
        psnr = "inf (identical)" if parity.get("identical") else _fmt(parity.get("min_psnr_db"))
        lines.append([
            r.get("protocol", "?"), str(r["clients"]), str(r["batch"]), f"{r['height']}×{r['width']}",
            str(r["sent"]), str(r["ok"]), str(r["errors"]),
            *(_fmt(r.get(k)) for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "requests_per_s", "images_per_s",
                                       "local_p50_ms")),
            f"{parity['max_abs']:.2e}" if parity.get("max_abs") is not None else "–", psnr,
            "ok" if r["status"] == "ok" else "**FAIL**",
        ])
    machine = next((r["machine"] for r in rows if "machine" in r), {})
    notes = ["Latency: wall clock per request at the client (queue, transfer, dynamic batching, inference). "
             "local p50: the same model through the local runner in the client process, one call at a time, "
             "just before the load. Parity: each answer against the local runner's output for the same input."]
    for r in rows:
        if r.get("host_load_1m"):
            before, after = r["host_load_1m"]
            notes.append(f"- {r.get('protocol', '?')}: host load average (1 min) {before:.1f} before, {after:.1f} after "
                         f"on {r['machine'].get('cpu_cores', '?')} cores")
    for r in rows:
        for reason, count in (r.get("error_kinds") or {}).items():
            notes.append(f"- {r.get('protocol', '?')}: {count}× {reason}")
    return f"{machine_block(machine)}\n\n{_table(header, lines)}\n\n" + "\n".join(notes) + "\n"


def write_strict_json(path: str | Path, data: Any) -> None:
    """JSON that every parser reads: NaN/Infinity are refused here (ValueError), not written."""
    write_text_atomic(path, json.dumps(data, indent=2, allow_nan=False, default=str) + "\n")
