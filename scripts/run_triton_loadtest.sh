#!/usr/bin/env bash
# Serving load test of record: the shipped demo checkpoint in Triton's Python backend (ONNX Runtime,
# fp32, CPU), served by the tritonserver bundled in nvidia-pytriton on 127.0.0.1; 4 concurrent
# clients, 200 requests per protocol (HTTP, then gRPC); every answer compared with the local runner.
#   bash scripts/run_triton_loadtest.sh [name] [HxW]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
NAME=${1:-triton-cpu-$(date -u +%F)}
SHAPE=${2:-256x256}
OUT=benchmarks/results/$NAME
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"

$BIN/dmphn-export triton -H "${SHAPE%x*}" -W "${SHAPE#*x}" --backend python --max-batch 4 --instances 1 \
    --threads 2 -o "$WORK/model_repository" | tee "$OUT/export_$SHAPE.log"
$BIN/dmphn-loadtest "$WORK/model_repository" --protocol http,grpc --clients 4 --requests 200 \
    --json "$OUT/loadtest_$SHAPE.json" --markdown "$OUT/loadtest_$SHAPE.md" | tee "$OUT/loadtest_$SHAPE.log"
echo "wrote $OUT"
