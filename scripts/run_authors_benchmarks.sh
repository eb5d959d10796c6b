#!/usr/bin/env bash
# The real-weights reports: the authors' GoPro DMPHN-1-2-4-8 on their 720x1280 GoPro test frames,
# every CPU runtime in one process, 2 threads. Parity is checked against PyTorch fp32 *and*
# against the authors' published outputs. Run on a quiet machine; results go to
# benchmarks/results/<name>/ (put the machine and the date in the name).
#   bash scripts/run_authors_benchmarks.sh [name]
# Env: DMPHN_REFERENCE_DIR (default ../shared/reference/dmphn-authors; the fetch-authors cache or a
#      `fetch-authors --frames DIR` folder works too), RUNTIMES (default all),
#      CROP=HxW (top-left crop of frames and expected outputs: a quick check of the tooling only;
#      a crop moves the patch borders, so it does not reproduce the published outputs).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
REF=${DMPHN_REFERENCE_DIR:-../shared/reference/dmphn-authors}
RUNTIMES=${RUNTIMES:-all}
NAME=${1:-authors-cpu-$(date -u +%F)}
OUT=benchmarks/results/$NAME
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"

FRAMES=$REF/test_samples
EXPECTED=$REF/test_results/DMPHN_1_2_4_8_test_res
if [ -n "${CROP:-}" ]; then
    mkdir -p "$WORK/frames" "$WORK/expected"
    "$BIN/python" - "$CROP" "$FRAMES" "$EXPECTED" "$WORK/frames" "$WORK/expected" <<'PY'
import sys
from pathlib import Path
import cv2
h, w = (int(v) for v in sys.argv[1].split("x"))
for source, target in ((sys.argv[2], sys.argv[4]), (sys.argv[3], sys.argv[5])):
    for path in sorted(Path(source).glob("*.png")):
        cv2.imwrite(str(Path(target) / path.name), cv2.imread(str(path))[:h, :w])
PY
    FRAMES=$WORK/frames
    EXPECTED=$WORK/expected
fi

# the same path a user takes: fetch (here from the local copy, sha256-checked) and import
$BIN/dmphn-ckpt fetch-authors --base-url "$REF" --cache "$WORK/cache" -o "$WORK/authors-1-2-4-8.pt"
SHAPE=$("$BIN/python" -c "import cv2, sys, pathlib; f = sorted(pathlib.Path(sys.argv[1]).glob('*.png'))[0]; \
h, w = cv2.imread(str(f)).shape[:2]; print(f'{h}x{w}')" "$FRAMES")

# parity exits 1 when a row fails: keep going to the latency report, then say so
status=0
$BIN/dmphn-parity -c "$WORK/authors-1-2-4-8.pt" --runtime "$RUNTIMES" --device cpu --inputs "$FRAMES" \
    --expected "$EXPECTED" --workdir "$WORK/art" \
    --markdown "$OUT/parity_$SHAPE.md" --json "$OUT/parity_$SHAPE.json" | tee "$OUT/parity_$SHAPE.log" || status=$?
$BIN/dmphn-bench -c "$WORK/authors-1-2-4-8.pt" --runtime "$RUNTIMES" --device cpu --threads 2 --inputs "$FRAMES" \
    --warmup 1 --iters 5 --workdir "$WORK/art" \
    --markdown "$OUT/bench_$SHAPE.md" --json "$OUT/bench_$SHAPE.json" --csv "$OUT/bench_$SHAPE.csv" \
    --plot "$OUT/bench_$SHAPE.png" | tee "$OUT/bench_$SHAPE.log"
echo "wrote $OUT"
exit $status
