#!/bin/bash
# The isolated tables of benchmarks/results/cpu-amx-xeon-2026-12-06 (issue 26), as run.
# Usage: bash run.sh prepare | time352 | time720 | parity352 | parity720
# Needs: the authors' DMPHN-1-2-4-8 imported into $CK
#   (dmphn-ckpt import-authors $REF/checkpoints/DMPHN_1_2_4_8 -o $CK), their four 720x1280 test
#   frames ($REF/test_samples), and 352x640 copies of them in $FRAMES352 (bicubic to 640x360, rows
#   4..355 kept). Artifacts are built under a SHARED lock, rows are timed under an EXCLUSIVE one.
set -euo pipefail
OUT=$(cd "$(dirname "$0")" && pwd)
cd "$OUT/../../.."
export PYTHONPATH=$PWD DMPHN_CACHE=${DMPHN_CACHE:-/work/cache-bench-core}
REF=${DMPHN_REFERENCE_DIR:-/work/shared/reference/dmphn-authors}
CK=${CK:-$DMPHN_CACHE/authors-1248.pt}
FRAMES352=${FRAMES352:-$DMPHN_CACHE/frames-352x640}
WORK=${WORK:-$DMPHN_CACHE/artifacts}
PY=${PY:-/work/main/.venv/bin/python}
LOCK=/tmp/dmphn-cpu.lock
ALL=(--runtime torch-ref,torch,torchscript,ort,ov --precision fp32,bf16,int8)

bench() { "$PY" -c "from cli.bench import bench_main; bench_main()" -c "$CK" --device cpu --threads 2 --workdir "$WORK" "$@"; }
parity() { "$PY" -c "from cli.bench import parity_main; parity_main()" -c "$CK" --device cpu --threads 2 --workdir "$WORK" "$@"; }
timed() {  # NAME BENCH-OPTIONS...: one exclusive hold, load and time before and after
  local name=$1; shift
  uptime; date -u
  bench "$@" --jsonl "$OUT/$name.jsonl" --json "$OUT/$name.json" --markdown "$OUT/$name.md"
  uptime; date -u
}

case ${1:?} in
  _locked) shift; "$@" ;;  # the script re-invoked under a lock
  prepare) for size in 352x640 720x1280; do flock -s $LOCK bash "$OUT/run.sh" _locked bench "${ALL[@]}" --shape $size --prepare-only; done ;;
  time352) flock -x $LOCK bash "$OUT/run.sh" _locked timed bench_352x640 "${ALL[@]}" --inputs "$FRAMES352" --warmup 1 --iters 3 --rounds 3 2>&1 | tee "$OUT/bench_352x640.log" ;;
  # 720p: the rows whose artifacts were ready in time (OpenVINO's; ONNX Runtime's and TorchScript's 720p
  # exports did not finish on the shared machine before the deadline), one hold of < 10 min
  time720) flock -x $LOCK bash "$OUT/run.sh" _locked timed bench_720x1280 --runtime torch-ref,torch,ov --precision fp32,bf16,int8 --inputs "$REF/test_samples" --warmup 1 --iters 1 --rounds 3 2>&1 | tee "$OUT/bench_720x1280.log" ;;
  parity352) flock -s $LOCK bash "$OUT/run.sh" _locked parity --runtime torch-ref,ort,ov --precision bf16,int8 --inputs "$FRAMES352" --json "$OUT/parity_352x640.json" --markdown "$OUT/parity_352x640.md" ;;
  parity720) flock -s $LOCK bash "$OUT/run.sh" _locked parity --runtime torch-ref,ov --precision bf16,int8 --inputs "$REF/test_samples" --json "$OUT/parity_720x1280.json" --markdown "$OUT/parity_720x1280.md" ;;
  *) echo "error: unknown step $1" >&2; exit 2 ;;
esac
