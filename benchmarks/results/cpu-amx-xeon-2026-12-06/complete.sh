#!/bin/bash
# Rows the session's first holds could not reach, timed after all branches were merged (one exclusive
# hold, this machine otherwise idle): the whole 720x1280 table in one round-robin run (every runtime x
# precision, so the OpenVINO int8 row now has its float parts in bf16, the merged default), then
# throughput mode for ONNX Runtime fp32/int8 at 720x1280 and int8 at 352x640 (issue 30's missing rows).
# Artifacts: `bash run.sh _locked bench --runtime torchscript,ort --precision fp32,int8 --shape 720x1280
# --prepare-only` (plus run.sh prepare), same $WORK.
set -uo pipefail
OUT=$(cd "$(dirname "$0")" && pwd)
cd "$OUT/../../.."
export PYTHONPATH=$PWD DMPHN_CACHE=${DMPHN_CACHE:-/work/cache-bench-core}
REF=${DMPHN_REFERENCE_DIR:-/work/shared/reference/dmphn-authors}
CK=${CK:-$DMPHN_CACHE/authors-1248.pt}
FRAMES352=${FRAMES352:-$DMPHN_CACHE/frames-352x640}
WORK=${WORK:-$DMPHN_CACHE/artifacts}
PY=${PY:-/work/main/.venv/bin/python}
bench() { "$PY" -c "from cli.bench import bench_main; bench_main()" -c "$CK" --device cpu --threads 2 --workdir "$WORK" "$@"; }
uptime; date -u
bench --runtime torch-ref,torch,torchscript,ort,ov --precision fp32,bf16,int8 --inputs "$REF/test_samples" \
      --warmup 1 --iters 1 --rounds 3 --jsonl "$OUT/bench_720x1280_all.jsonl" --json "$OUT/bench_720x1280_all.json" \
      --markdown "$OUT/bench_720x1280_all.md"
uptime; date -u
bench --runtime ort --precision fp32,int8 --inputs "$REF/test_samples" --mode throughput --warmup 1 --iters 2 \
      --rounds 1 --frames 4 --json "$OUT/throughput/bench_720x1280_ort.json" --markdown "$OUT/throughput/bench_720x1280_ort.md"
uptime; date -u
bench --runtime ort --precision int8 --inputs "$FRAMES352" --mode throughput --warmup 1 --iters 3 \
      --rounds 1 --frames 8 --json "$OUT/throughput/bench_352x640_ort_int8.json" --markdown "$OUT/throughput/bench_352x640_ort_int8.md"
uptime; date -u
