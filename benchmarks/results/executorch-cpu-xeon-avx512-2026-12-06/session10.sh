#!/bin/bash
# ExecuTorch rows at both sizes beside ort and ov (issue 29), after the int8 recipe moved to percentile
# activation ranges (2026-12-06, session 10): rebuild the et int8 programs, parity of et/ort/ov int8 on
# the authors' four frames (352x640: the resized copies of the isolated tables; 720x1280: as published),
# then one round-robin dmphn-bench per size with the rows the issue's targets compare, on an idle machine.
# Usage: bash session10.sh [s10|s10b|s11]. Same $WORK and frames as ../cpu-amx-xeon-2026-12-06/complete_all.sh.
# s11 (session 11): the exporter's recipe 1 (int8 residual adds in the level-1 encoder and the level-2+ decoders);
# $WORK is path-keyed, so the et int8 programs of the older recipe are removed first.
set -uo pipefail
NAME=${1:-s10}  # output suffix: s10 = percentile ranges only, s10b = + the output block float, s11 = + int8 adds
OUT=$(cd "$(dirname "$0")" && pwd)
cd "$OUT/../../.."
export PYTHONPATH=$PWD DMPHN_CACHE=${DMPHN_CACHE:-/work/cache-bench-core}
REF=${DMPHN_REFERENCE_DIR:-/work/shared/reference/dmphn-authors}
CK=${CK:-$DMPHN_CACHE/authors-1248.pt}
FRAMES352=${FRAMES352:-$DMPHN_CACHE/frames-352x640}
WORK=${WORK:-$DMPHN_CACHE/artifacts}
PY=${PY:-$PWD/.venv/bin/python}
ROWS=(--runtime torch-ref,ort,ov,et --precision fp32,int8)
bench() { "$PY" -c "from cli.bench import bench_main; bench_main()" -c "$CK" --device cpu --threads 2 --workdir "$WORK" "$@"; }
parity() { "$PY" -c "from cli.bench import parity_main; parity_main()" -c "$CK" --device cpu --threads 2 --workdir "$WORK" "$@"; }
if [ "$NAME" = s11 ]; then rm -f "$WORK"/executorch_b1_*_cpu_int8.pte; fi
for size in 352x640 720x1280; do bench --runtime et --precision int8 --shape $size --prepare-only; done
parity --runtime et,ort,ov --precision int8 --inputs "$FRAMES352" --json "$OUT/parity_352x640_int8_${NAME}.json" --markdown "$OUT/parity_352x640_int8_${NAME}.md"
parity --runtime et,ort,ov --precision int8 --inputs "$REF/test_samples" --json "$OUT/parity_720x1280_int8_${NAME}.json" --markdown "$OUT/parity_720x1280_int8_${NAME}.md"
uptime; date -u
bench "${ROWS[@]}" --inputs "$FRAMES352" --warmup 1 --iters 3 --rounds 6 --json "$OUT/bench_352x640_${NAME}.json" --markdown "$OUT/bench_352x640_${NAME}.md"
uptime; date -u
bench "${ROWS[@]}" --inputs "$REF/test_samples" --warmup 1 --iters 1 --rounds 3 --json "$OUT/bench_720x1280_${NAME}.json" --markdown "$OUT/bench_720x1280_${NAME}.md"
uptime; date -u
# s10b and s11: a longer 352x640 run of the int8 target's two rows (10 rounds), the 6-round run above being noisy
if [ "$NAME" != s10 ]; then
  bench --runtime torch-ref,et --precision fp32,int8 --inputs "$FRAMES352" --warmup 1 --iters 3 --rounds 10 \
        --json "$OUT/bench_352x640_${NAME}_10rounds.json" --markdown "$OUT/bench_352x640_${NAME}_10rounds.md"
  uptime; date -u
fi
