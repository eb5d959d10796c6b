#!/usr/bin/env bash
# The commands behind this folder's numbers. Artifacts were exported and verified beforehand under the
# shared lock (same commands with --iters 1 --frames 2); each part below ran under the EXCLUSIVE lock:
#   flock -x /tmp/dmphn-cpu.lock bash run_cpu.sh PART
# PART: 352 (bench at 352x640 on 4 resized GoPro frames + the video pipeline on a 16-frame clip of them),
#       720 (bench at 720x1280 on the authors' 4 GoPro test frames),
#       triton (concurrency sweep 1,2,4,8 against the python-backend repository at 352x640:
#               dmphn-export triton $CKPT -H 352 -W 640 --backend python --max-batch 4 --instances 2 --threads 1).
set -uo pipefail  # no -e: a failed row still leaves its report and the closing uptime
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../../.." && pwd)
CACHE=${DMPHN_CACHE:?set DMPHN_CACHE}
PY="env PYTHONPATH=$ROOT /work/main/.venv/bin/python"
CKPT=$CACHE/authors-1248.pt  # dmphn-ckpt import-authors $DMPHN_REFERENCE_DIR/checkpoints/DMPHN_1_2_4_8 -o ...
bench() { $PY -c "from cli.bench import bench_main; bench_main()" -c "$CKPT" --precision fp32,bf16 \
            --device cpu --mode throughput --workdir "$CACHE/bench" "$@"; }
echo "uptime before: $(uptime)" | tee "$HERE/uptime_$1.txt"
case "$1" in
  352)
    bench --runtime ov,ort --inputs "$CACHE/frames352" --iters 3 --warmup 1 --frames 8 \
          --json "$HERE/bench_352x640.json" --markdown "$HERE/bench_352x640.md"
    echo "uptime between: $(uptime)" | tee -a "$HERE/uptime_$1.txt"
    # the same verified IR the bench row timed (--model a checkpoint would run it from the artifact cache)
    $PY -c "from cli.deblur import main; main()" "$CACHE/clip352.avi" -o "$CACHE/out352.avi" \
        --model "$CACHE/bench/openvino_b1_352x640_cpu_fp32.xml" \
        | tee "$HERE/video_352x640.txt"
    ;;
  720)
    # ov only at 720p: the 720p ONNX export did not get through the shared queue before the deadline
    bench --runtime ov --inputs /work/shared/reference/dmphn-authors/test_samples --iters 2 --warmup 1 --frames 4 \
          --json "$HERE/bench_720x1280.json" --markdown "$HERE/bench_720x1280.md"
    ;;
  triton)
    $PY -c "from cli.loadtest import main; main()" "$CACHE/triton_repo" --protocol grpc --concurrency 1,2,4,8 \
        --requests 4 --json "$HERE/triton_sweep.json" --markdown "$HERE/triton_sweep.md" --plot "$HERE/triton_sweep.png"
    ;;
esac
echo "uptime after: $(uptime)" | tee -a "$HERE/uptime_$1.txt"
# The plot (no timing): latency-mode vs throughput-mode frames/s from both bench JSONs.
#   env PYTHONPATH=$ROOT python -c "import json,sys; from benchmarks.throughput import plot_throughput; \
#     plot_throughput(sys.argv[1], [r for p in sys.argv[2:] for r in json.load(open(p)) if r.get('mode') == 'throughput'])" \
#     throughput.png bench_352x640.json bench_720x1280.json
