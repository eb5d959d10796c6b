#!/bin/bash
# Every runtime x precision that runs on this CPU, in ONE round-robin dmphn-bench process per size
# (issue 26's "isolated tables, both sizes, every runtime x precision"; issue 29's et rows beside ort
# and ov): torch-ref, torch, torchscript, compile (torch.compile, compiled at the first call: its
# compile time is the row's build s, not in the latency), aoti, ort, ov, et. Run on an otherwise idle
# machine (uptime before and after each size). Artifacts come from the same $WORK as run.sh/complete.sh
# (`bench ... --prepare-only` first, so no export runs between timed rows).
# Usage: bash complete_all.sh prepare | time352 | time720 | parity352 | parity720
set -uo pipefail
OUT=$(cd "$(dirname "$0")" && pwd)
cd "$OUT/../../.."
export PYTHONPATH=$PWD DMPHN_CACHE=${DMPHN_CACHE:-/work/cache-bench-core}
REF=${DMPHN_REFERENCE_DIR:-/work/shared/reference/dmphn-authors}
CK=${CK:-$DMPHN_CACHE/authors-1248.pt}
FRAMES352=${FRAMES352:-$DMPHN_CACHE/frames-352x640}
WORK=${WORK:-$DMPHN_CACHE/artifacts}
PY=${PY:-$PWD/.venv/bin/python}
ALL=(--runtime torch-ref,torch,torchscript,compile,aoti,ort,ov,et --precision fp32,bf16,int8)
bench() { "$PY" -c "from cli.bench import bench_main; bench_main()" -c "$CK" --device cpu --threads 2 --workdir "$WORK" "$@"; }
parity() { "$PY" -c "from cli.bench import parity_main; parity_main()" -c "$CK" --device cpu --threads 2 --workdir "$WORK" "$@"; }
timed() {  # NAME BENCH-OPTIONS...
  local name=$1; shift
  uptime; date -u
  bench "$@" --jsonl "$OUT/$name.jsonl" --json "$OUT/$name.json" --markdown "$OUT/$name.md"
  uptime; date -u
}
case ${1:?} in
  prepare) for size in 352x640 720x1280; do bench "${ALL[@]}" --shape $size --prepare-only; done ;;
  time352) timed bench_352x640_complete "${ALL[@]}" --inputs "$FRAMES352" --warmup 1 --iters 3 --rounds 3 2>&1 | tee "$OUT/bench_352x640_complete.log" ;;
  time720) timed bench_720x1280_complete "${ALL[@]}" --inputs "$REF/test_samples" --warmup 1 --iters 1 --rounds 3 2>&1 | tee "$OUT/bench_720x1280_complete.log" ;;
  parity352) parity --runtime ort,et --precision int8 --inputs "$FRAMES352" --json "$OUT/parity_352x640_int8_ort_et.json" --markdown "$OUT/parity_352x640_int8_ort_et.md" ;;
  parity720) parity --runtime ort,et --precision int8 --inputs "$REF/test_samples" --json "$OUT/parity_720x1280_int8_ort_et.json" --markdown "$OUT/parity_720x1280_int8_ort_et.md" ;;
  *) echo "error: unknown step $1" >&2; exit 2 ;;
esac
