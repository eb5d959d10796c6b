#!/usr/bin/env bash
# The issue #26 720p target, as run for this folder (under the exclusive CPU lock, cache warm):
#   flock -x /tmp/dmphn-cpu.lock bash benchmarks/results/cpu-amx-xeon-2026-12-06/auto-precision/run.sh
# 1. dmphn-bench --record: ov int8/bf16 at 720x1280 on the authors' frames, into the cache's table;
# 2. three alternating rounds of whole dmphn-deblur processes: --runtime torch-ref, then
#    --precision auto --min-psnr 40, on their frame 000001.png; timing.json compares the outputs.
set -uo pipefail
cd "$(dirname "$0")/../../../.."
HERE=benchmarks/results/cpu-amx-xeon-2026-12-06/auto-precision
PY=${PY:-/work/main/.venv/bin/python}
REF=${DMPHN_REFERENCE_DIR:-/work/shared/reference/dmphn-authors}
CKPT=${CKPT:-/work/ap-work/authors-1-2-4-8.pt}   # dmphn-ckpt import-authors $REF/checkpoints/DMPHN_1_2_4_8 -o $CKPT
export PYTHONPATH=$PWD DMPHN_CACHE=${DMPHN_CACHE:-/work/cache-auto-precision}
uptime | tee "$HERE/uptime_before.txt"
mkdir -p /work/ap-work/frames720 && cp "$REF/test_samples/000001.png" /work/ap-work/frames720/
$PY -c 'import sys; sys.argv[0] = "dmphn-bench"; from cli.bench import bench_main; bench_main()' \
  -c "$CKPT" --runtime ov --precision int8,bf16 --device cpu --inputs /work/ap-work/frames720 \
  --warmup 1 --iters 3 --record --json "$HERE/bench_record_720x1280.json" --markdown "$HERE/bench_record_720x1280.md" \
  2>&1 | tee "$HERE/bench_record_720x1280.log"
$PY scripts/time_deblur_processes.py "$REF/test_samples/000001.png" "$CKPT" /work/ap-work/timing --rounds 3 \
  --baseline "--runtime torch-ref" --candidate "--precision auto --min-psnr 40" 2>&1 | tee "$HERE/timing.log"
cp /work/ap-work/timing/timing.json "$HERE/timing.json"
uptime | tee "$HERE/uptime_after.txt"
