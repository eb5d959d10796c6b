"""Issue 29's targets for the ExecuTorch runtime, judged from ``dmphn-bench`` / ``dmphn-parity`` JSON.

``python -m benchmarks.et_targets --bench B.json [B.json ...] --parity P.json [...] -o targets.json``
(``benchmarks/executorch_targets.sh`` runs it last) prints a line per target and size and writes
strict JSON. A speed target is judged on each report's headline (the bench's p50: each row's best
round) *and* on its per-round median (ratios of the same round, the steadier figure under drifting
load): on a shared machine the two can differ by 20 %, and a target met by one only is not met
(reports older than the per-round column are judged on the headline alone).

Targets (vs per-patch eager fp32, same run, same CPU): ExecuTorch XNNPACK fp32 within 10 % of
ONNX Runtime fp32; int8 at least 40 dB against PyTorch fp32 on every frame; int8 at least 3.5x
the per-patch eager.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from benchmarks.report import round_ratios
from dmphn_core.fileio import strict_json, write_text_atomic

FP32_MAX_VS_ORT = 1.10
INT8_MIN_PSNR_DB = 40.0
INT8_MIN_SPEEDUP = 3.5


def _load_rows(path: Path) -> list[dict[str, Any]]:
    rows = json.loads(Path(path).read_text())
    if not isinstance(rows, list):
        raise ValueError(f"{path}: not a dmphn-bench / dmphn-parity JSON report (a list of rows)")
    return rows


def _timed_row(rows: list[dict[str, Any]], runtime: str, precision: str) -> dict[str, Any] | None:
    for row in rows:
        if row.get("runtime") == runtime and row.get("precision") == precision and row.get("p50_ms"):
            return row
    return None


def _size(row: dict[str, Any]) -> str:
    return f"{row['height']}x{row['width']}"


def _verdict(target: str, size: str, source: str, figures: dict[str, float | None], meets) -> dict[str, Any]:
    """Met when every figure the report has meets the target (and it has at least one)."""
    known = {name: round(value, 3) for name, value in figures.items() if value is not None}
    return {"target": target, "size": size, "source": source, "figures": known,
            "met": bool(known) and all(meets(value) for value in known.values())}


def judge(bench: dict[str, list[dict[str, Any]]], parity: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """``{"machine", "targets": [...], "all_met"}`` from bench and parity reports (``{source name: rows}``)."""
    verdicts: list[dict[str, Any]] = []
    machine: dict[str, Any] = {}
    for source, rows in bench.items():
        et_fp32, ort_fp32 = _timed_row(rows, "et", "fp32"), _timed_row(rows, "ort", "fp32")
        if et_fp32 is not None and ort_fp32 is not None:
            ratios = round_ratios(et_fp32, ort_fp32)
            figures = {"headline": et_fp32["p50_ms"] / ort_fp32["p50_ms"],
                       "per_round_median": statistics.median(ratios) if ratios else None}
            verdicts.append(_verdict("et fp32 / ort fp32 <= 1.10", _size(et_fp32), source, figures,
                                     lambda ratio: ratio <= FP32_MAX_VS_ORT))
        et_int8 = _timed_row(rows, "et", "int8")
        if et_int8 is not None:
            machine = machine or et_int8.get("machine") or {}
            figures = {"headline": et_int8.get("speedup_vs_ref"),
                       "per_round_median": et_int8.get("speedup_vs_ref_round_median")}
            verdicts.append(_verdict("et int8 >= 3.5x per-patch eager", _size(et_int8), source, figures,
                                     lambda speedup: speedup >= INT8_MIN_SPEEDUP))
    for source, rows in parity.items():
        int8 = [row for row in rows if row.get("runtime") == "et" and row.get("precision") == "int8"]
        scored = [row for row in int8 if isinstance(row.get("psnr_db"), (int, float))]
        if not int8:
            continue
        worst = min((row["psnr_db"] for row in scored), default=None)
        verdict = _verdict("et int8 >= 40 dB on every frame", _size(int8[0]), source, {"worst_frame_db": worst},
                           lambda psnr: psnr >= INT8_MIN_PSNR_DB)
        verdict["met"] = verdict["met"] and len(scored) == len(int8)  # a frame without a PSNR is not a pass
        verdict["per_frame_db"] = {row.get("input", "?"): round(row["psnr_db"], 2) for row in scored}
        verdicts.append(verdict)
    kinds = {verdict["target"] for verdict in verdicts}
    missing = sorted({"et fp32 / ort fp32 <= 1.10", "et int8 >= 3.5x per-patch eager",
                      "et int8 >= 40 dB on every frame"} - kinds)
    features = machine.get("cpu_features") or {}
    return {
        "machine": {"cpu": machine.get("cpu"), "date": machine.get("date"),
                    "isa": sorted(name for name, present in features.items() if present)},
        "targets": verdicts,
        "missing": missing,
        "all_met": bool(verdicts) and not missing and all(verdict["met"] for verdict in verdicts),
    }


def _line(verdict: dict[str, Any]) -> str:
    figures = ", ".join(f"{name.replace('_', ' ')} {value}" for name, value in verdict["figures"].items())
    return f"{'met    ' if verdict['met'] else 'NOT met'}  {verdict['target']} at {verdict['size']}: " \
           f"{figures or 'no figure'} ({verdict['source']})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bench", nargs="*", type=Path, default=[], help="dmphn-bench --json reports")
    parser.add_argument("--parity", nargs="*", type=Path, default=[], help="dmphn-parity --json reports")
    parser.add_argument("-o", "--output", type=Path, help="write the verdicts here (strict JSON)")
    args = parser.parse_args(argv)
    try:
        result = judge({path.name: _load_rows(path) for path in args.bench},
                       {path.name: _load_rows(path) for path in args.parity})
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for verdict in result["targets"]:
        print(_line(verdict))
    for target in result["missing"]:
        print(f"NOT met  {target}: no report has its rows")
    print(f"machine: {result['machine']['cpu']} ({', '.join(result['machine']['isa'])})")
    if args.output is not None:
        write_text_atomic(args.output, strict_json(result, indent=2))
    return 0 if result["all_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
