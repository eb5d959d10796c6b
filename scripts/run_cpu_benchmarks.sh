#!/usr/bin/env bash
# The CPU benchmark of record: DMPHN-1-2-4-8, every runtime in one process per shape, 2 threads.
# Weights are freshly initialised (seed 0): latency does not depend on their values, and parity
# is checked on the same model. Run on a quiet machine; results go to benchmarks/results/<name>/.
#   bash scripts/run_cpu_benchmarks.sh [name]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
NAME=${1:-cpu-$(date -u +%F)}
OUT=benchmarks/results/$NAME
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"

$BIN/dmphn-ckpt init -o "$WORK/dmphn-1-2-4-8.pt" --levels 1-2-4-8 --seed 0
$BIN/dmphn-parity -c "$WORK/dmphn-1-2-4-8.pt" --runtime all --device cpu --shape 256x256 --workdir "$WORK/art256" \
    --markdown "$OUT/parity_256x256.md" --json "$OUT/parity_256x256.json" | tee "$OUT/parity_256x256.log"
$BIN/dmphn-bench -c "$WORK/dmphn-1-2-4-8.pt" --runtime all --device cpu --threads 2 --shape 256x256 \
    --warmup 2 --iters 10 --workdir "$WORK/art256" \
    --markdown "$OUT/bench_256x256.md" --json "$OUT/bench_256x256.json" --csv "$OUT/bench_256x256.csv" \
    --plot "$OUT/bench_256x256.png" | tee "$OUT/bench_256x256.log"
$BIN/dmphn-bench -c "$WORK/dmphn-1-2-4-8.pt" --runtime all --device cpu --threads 2 --shape 720x1280 \
    --warmup 1 --iters 5 --workdir "$WORK/art720" \
    --markdown "$OUT/bench_720x1280.md" --json "$OUT/bench_720x1280.json" --csv "$OUT/bench_720x1280.csv" \
    --plot "$OUT/bench_720x1280.png" | tee "$OUT/bench_720x1280.log"
echo "wrote $OUT"
