"""Measured speed tables: what ``dmphn-bench --record`` timed on this machine, for ``--runtime auto``.

A table holds the headline latency (``p50_ms``) of each (runtime, precision) that ran, for one
set of weights (their content hash, :func:`export.cache.model_digest`), one input size, one
machine (CPU model, the ISA features that decide reduced-precision speed, threads; the GPU on
CUDA), one toolkit version and the exporters' recipe revisions
(:func:`export.exporter.recipe_revisions`): change any of them and the table no longer applies, so it is
not read. Tables live in the per-user cache beside the artifacts (``speed-tables/``), written
atomically as strict JSON that carries the sha256 of its own content; a table that fails that
check, or whose key is not the one asked for, is ignored (with a line saying so), never trusted.

Speed only: quality comes from verifying artifacts on frames (:mod:`export.cache` records).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from dmphn_core import __version__
from dmphn_core.cpu import cpu_features, cpu_model
from dmphn_core.fileio import strict_json, user_cache_dir, write_text_atomic
from dmphn_core.precision import PRECISIONS

from .exporter import recipe_revisions

TABLE_KIND = "dmphn-speed-table"


@dataclass(frozen=True)
class TableKey:
    """What a measured latency is a function of; a table is read only under an equal key."""

    weights: str
    height: int
    width: int
    device: str
    cpu: str
    isa: tuple[str, ...]
    threads: int
    gpu: str | None = None
    batch: int = 1
    toolkit: str = __version__
    recipes: str = ""

    @classmethod
    def here(cls, weights: str, height: int, width: int, device: str = "cpu", threads: int | None = None,
             *, batch: int = 1) -> TableKey:
        """The key of this machine now (``threads`` None: torch's current thread count)."""
        gpu = torch.cuda.get_device_name(0) if device == "cuda" and torch.cuda.is_available() else None
        isa = tuple(name for name, present in cpu_features().items() if present)
        return cls(weights, height, width, device, cpu_model(), isa, threads or torch.get_num_threads(), gpu, batch,
                   recipes=recipe_revisions())

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "isa": list(self.isa)}

    @property
    def machine_digest(self) -> str:
        machine = {"cpu": self.cpu, "isa": list(self.isa), "threads": self.threads, "gpu": self.gpu}
        return hashlib.sha256(json.dumps(machine, sort_keys=True).encode()).hexdigest()[:12]


def speed_table_dir(cache: str | os.PathLike | None = None) -> Path:
    """``speed-tables/`` inside the cache folder ``cache`` (default: :func:`dmphn_core.fileio.user_cache_dir`)."""
    return Path(cache if cache is not None else user_cache_dir()) / "speed-tables"


def table_path(root: Path, key: TableKey) -> Path:
    return (root / key.weights
            / f"{key.device}_b{key.batch}_{key.height}x{key.width}_{key.machine_digest}_t{key.threads}_v{key.toolkit}.json")


def _content_sha256(key: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    return hashlib.sha256(strict_json({"key": key, "rows": rows}, sort_keys=True).encode()).hexdigest()


def _valid_row(row: Any) -> bool:
    return (isinstance(row, dict) and isinstance(row.get("runtime"), str) and row.get("precision") in PRECISIONS
            and isinstance(row.get("p50_ms"), (int, float)) and math.isfinite(row["p50_ms"]) and row["p50_ms"] > 0)


def _read(path: Path, key: TableKey) -> tuple[list[dict[str, Any]] | None, str | None]:
    """``(rows, problem)``: the rows of a trustworthy table, or None and what is wrong (None: no table)."""
    if not path.exists():
        return None, None
    try:
        table = json.loads(path.read_text())
        rows, recorded_key, recorded_sha = table["rows"], table["key"], table["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return None, "unreadable"
    if _content_sha256(recorded_key, rows) != recorded_sha:
        return None, "corrupt (its content no longer matches its sha256)"
    if recorded_key != key.to_dict():
        return None, "for another machine, weights, size, toolkit version or export recipe"
    if not isinstance(rows, list) or not all(_valid_row(row) for row in rows):
        return None, "malformed (a row without a runtime, precision or positive p50_ms)"
    return rows, None


def measured_speeds(key: TableKey, root: Path, log: Callable[[str], None] | None = None) -> dict[tuple[str, str], float]:
    """``{(runtime, precision): p50_ms}`` measured for ``key``; empty when no trustworthy table exists."""
    path = table_path(root, key)
    rows, problem = _read(path, key)
    if problem and log is not None:
        log(f"ignoring measured speed table {path}: {problem}")
    return {(row["runtime"], row["precision"]): float(row["p50_ms"]) for row in rows or []}


def record_speeds(key: TableKey, root: Path, rows: list[dict[str, Any]]) -> Path:
    """Merge ``rows`` (``runtime``, ``precision``, ``p50_ms``, optional ``measured``) into the table of ``key``.

    A (runtime, precision) measured again replaces its earlier row; others are kept. Written
    atomically; an unreadable or corrupt earlier table is replaced.
    """
    fresh = [{name: row[name] for name in ("runtime", "precision", "p50_ms", "measured") if name in row} for row in rows]
    bad = [row for row in fresh if not _valid_row(row)]
    if bad:
        raise ValueError(f"not a measured speed row: {bad[0]}")
    path = table_path(root, key)
    earlier, _ = _read(path, key)
    replaced = {(row["runtime"], row["precision"]) for row in fresh}
    merged = [row for row in earlier or [] if (row["runtime"], row["precision"]) not in replaced] + fresh
    merged.sort(key=lambda row: row["p50_ms"])
    key_dict = key.to_dict()
    table = {"kind": TABLE_KIND, "key": key_dict, "rows": merged, "sha256": _content_sha256(key_dict, merged)}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, strict_json(table, indent=2))
    return path


def record_bench_rows(rows: list[dict[str, Any]], weights: str, root: Path, threads: int | None = None) -> list[Path]:
    """Record the ``status == "ok"`` rows of a ``dmphn-bench`` run, one table per (device, batch, size).

    ``weights``: the content hash of the model the rows ran (:func:`export.cache.model_digest`);
    ``threads``: what the run was given (None: torch's current thread count).
    """
    groups: dict[tuple[str, int, int, int], list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("status") == "ok":
            measured = row.get("machine", {}).get("date")
            entry = {"runtime": row["runtime"], "precision": row["precision"], "p50_ms": row["p50_ms"]}
            groups.setdefault((row["device"], row["batch"], row["height"], row["width"]), []).append(
                {**entry, "measured": measured} if measured else entry)
    return [record_speeds(TableKey.here(weights, height, width, device, threads, batch=batch), root, group)
            for (device, batch, height, width), group in groups.items()]


__all__ = ["TableKey", "measured_speeds", "record_bench_rows", "record_speeds", "speed_table_dir", "table_path"]
