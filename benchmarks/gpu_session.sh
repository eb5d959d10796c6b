#!/usr/bin/env bash
# A short lease of a GPU machine, as one command that always leaves results.
#
#   OUT=results/ REF=path/to/dmphn-authors bash benchmarks/gpu_session.sh [STAGE ...]
#
# Runs on a machine whose python3 already has CUDA torch (torch, onnx, onnxruntime, typer...);
# missing pure-Python wheels come from $WHEELS. REF is the authors' reference folder
# (checkpoints/DMPHN_1_2_4_8, test_samples, test_results); CKPT=FILE uses that checkpoint instead
# of importing theirs. docs/gpu.md says what each stage measures and how to read the results.
#
# Default stages, in order of value per minute of GPU time (docs/gpu.md):
#   assets facts baseline cudnn channels_last cuda_graphs batch parity max_autotune aoti
# Out of the timed path, only when named: trt tests cpp_build cpp train cpu_prep cpu_bench
# cpu_layout cpu_parity cpu_ort. An unknown stage name stops the script before anything runs.
#
# Time: a global DEADLINE (seconds from the start, default 540) bounds everything. Each stage
# runs in its own process group under min(its cap, what the deadline leaves); a stage that
# would start with less than MIN_STAGE seconds left is skipped. CAPS="stage=seconds ..."
# overrides caps. Every benchmarked variant is its own process (a crash or a cut loses one
# variant) and appends its rows to $OUT/rows.jsonl as soon as it has them (strict JSON, one
# row a line, tagged with stage, variant and the dmphn-bench options that made it); each
# stage's outcome goes to $OUT/stages.jsonl (ok / error / timeout / skipped). So a cut stage
# keeps every row before it. Logs: $OUT/<stage>.log.
#
# Knobs: DEVICE (cuda), PRECISION (fp16), RUNTIME (compile: the runtime tuned after the eager
# baseline), WARMUP (5), ITERS (30), BATCHES ("2 4"), PROFILE_ITERS (3). A CPU rehearsal
# (DEVICE=cpu RUNTIME=torch PRECISION=fp32, tiny frames in REF) runs in the test suite
# (tests/benchmarks/test_gpu_session.py), so the script cannot rot between leases.
set -u
default_stages=(assets facts baseline cudnn channels_last cuda_graphs batch parity max_autotune aoti)
extra_stages=(trt tests cpp_build cpp train cpu_prep cpu_bench cpu_layout cpu_parity cpu_ort)
declare -A caps=([assets]=90 [facts]=30 [baseline]=200 [cudnn]=120 [channels_last]=150 [cuda_graphs]=90
                 [batch]=120 [parity]=90 [max_autotune]=300 [aoti]=180
                 [trt]=300 [tests]=300 [cpp_build]=240 [cpp]=90 [train]=60
                 [cpu_prep]=150 [cpu_bench]=300 [cpu_layout]=150 [cpu_parity]=150 [cpu_ort]=150)

stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=("${default_stages[@]}")
for name in "${stages[@]}"; do
    if [ -z "${caps[$name]+set}" ]; then
        echo "error: unknown stage '$name'; stages: ${default_stages[*]} ${extra_stages[*]}" >&2
        exit 2
    fi
done
for entry in ${CAPS:-}; do
    if [ -z "${caps[${entry%%=*}]+set}" ] || ! [[ ${entry#*=} =~ ^[0-9]+$ ]]; then
        echo "error: CAPS entry '$entry' is not STAGE=SECONDS with a known stage" >&2
        exit 2
    fi
    caps[${entry%%=*}]=${entry#*=}
done
[ -n "${OUT:-}" ] || { echo "error: set OUT to a folder for the results" >&2; exit 2; }
[ -n "${REF:-}" ] || { echo "error: set REF to the authors' reference folder" >&2; exit 2; }

export OUT REF
export DEADLINE=${DEADLINE:-540} MIN_STAGE=${MIN_STAGE:-15} RESERVE=${RESERVE:-10}
export PY=${PY:-python3} WORK=${WORK:-/tmp/dmphn-gpu} DEVICE=${DEVICE:-cuda} PRECISION=${PRECISION:-fp16}
export RUNTIME=${RUNTIME:-compile} WARMUP=${WARMUP:-5} ITERS=${ITERS:-30} BATCHES=${BATCHES:-2 4}
export PROFILE_ITERS=${PROFILE_ITERS:-3}
export WHEELS=${WHEELS:-}   # folder of extra wheels (onnxslim)
export DEBS=${DEBS:-}       # folder of Debian packages for the C++ build (libpng-dev, nlohmann-json3-dev, zlib1g-dev)
export OV_SITE=${OV_SITE:-} # cpu_* stages: tar.xz of the openvino wheel's files (the device has no openvino)
export INT8_IR=${INT8_IR:-} # cpu_* stages: folder with one int8 OpenVINO IR (.xml + .bin) for the frames' size, made elsewhere
export CPU_CORES=${CPU_CORES:-2,3} # cpu_* stages: the two cores the 2-thread timings are pinned to
export TRAIN_STEPS=${TRAIN_STEPS:-120} AMP=${AMP:-bf16}
BUNDLE=${BUNDLE:-}          # after each stage, a tar.gz of $OUT here (a lease returns few files)
export CKPT=${CKPT:-$WORK/authors_1_2_4_8.pt}
export FRAMES="$REF/test_samples" PUBLISHED="$REF/test_results/DMPHN_1_2_4_8_test_res"
export PYTHONUNBUFFERED=1 DMPHN_REFERENCE_DIR="$REF" DMPHN_CACHE="$WORK/cache"
export PYTHONPATH="$PWD${WHEELS:+:$WORK/site}${OV_SITE:+:$WORK/site}"
mkdir -p "$OUT" "$WORK/rows"
START=$SECONDS

cli() {  # [PIN=CORES] cli MODULE FUNCTION ARGS...: a console script without installing the package (pinned with taskset)
    local module=$1 function=$2; shift 2
    ${PIN:+taskset -c "$PIN"} $PY -X faulthandler -c "import sys; sys.argv[0] = '$function'; from cli.$module import $function; $function()" "$@"
}
append_rows() {  # append_rows JSON VARIANT OPTIONS: one dmphn-bench --json's rows, a strict-JSON line each, tagged
    $PY - "$1" "$OUT/rows.jsonl" "$STAGE" "$2" "$3" <<'EOF'
import json, sys
rows, (target, stage, variant, options) = json.load(open(sys.argv[1])), sys.argv[2:]
with open(target, "a") as out:
    out.writelines(json.dumps({**row, "stage": stage, "variant": variant, "options": options}, allow_nan=False) + "\n"
                   for row in rows)
EOF
}
variant() {  # variant NAME DMPHN-BENCH-OPTIONS...: one process; its rows reach rows.jsonl when it ends
    # A failed variant is noted for the driver (the stage becomes an error) and the stage goes on.
    local name=$1; shift
    local json="$WORK/rows/$STAGE.$name.json"
    echo "--- variant $name: $*"
    rm -f "$json"
    cli bench bench_main -c "$CKPT" --device "$DEVICE" --inputs "$FRAMES" --warmup "$WARMUP" --iters "$ITERS" \
        --workdir "$WORK/artifacts" --json "$json" "$@"
    local rc=$?
    [ -f "$json" ] && append_rows "$json" "$name" "$*"
    [ $rc -eq 0 ] || echo "$name (rc=$rc)" >> "$WORK/rows/$STAGE.failed"
    return 0
}
best() {  # best [RUNTIME]: the options of the fastest ok batch-1 row so far (of RUNTIME), or nothing
    $PY - "$OUT/rows.jsonl" "${1:-}" <<'EOF'
import json, sys
path, runtime = sys.argv[1], sys.argv[2]
try:
    rows = [json.loads(line) for line in open(path) if line.strip()]
except FileNotFoundError:
    rows = []
ok = [r for r in rows if r.get("status") == "ok" and r.get("batch") == 1 and (not runtime or r["runtime"] == runtime)]
if ok:
    print(min(ok, key=lambda r: r["p50_ms"])["options"])
EOF
}
skip() {  # skip REASON: end the stage as skipped
    echo "skipped: $*"
    exit 75
}

# -- the default stages ----------------------------------------------------------------------
assets() {  # the checkpoint and the frames, ready before anything is timed
    [ -d "$FRAMES" ] || { echo "error: no frames folder $FRAMES"; return 1; }
    echo "frames: $(ls "$FRAMES" | wc -l) in $FRAMES"
    if [ ! -f "$CKPT" ]; then
        cli ckpt main import-authors "$REF/checkpoints/DMPHN_1_2_4_8" -o "$CKPT" || return 1
    fi
    cli ckpt main info "$CKPT" > "$OUT/checkpoint.json" || return 1
    head -n 3 "$OUT/checkpoint.json"
}
facts() {
    date -u
    command -v nvidia-smi >/dev/null && nvidia-smi
    $PY - <<'EOF'
import platform, torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda,
      "cudnn", torch.backends.cudnn.version(),
      "gpu", torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
for name in ("onnxruntime", "tensorrt", "triton"):
    try:
        module = __import__(name)
        print(name, getattr(module, "__version__", "?"))
    except ImportError as exc:
        print(f"{name}: not importable: {exc}")
EOF
    lscpu | grep -E "Model name|^CPU\(s\)"
}
baseline() {  # the same-machine reference rows, and where the time of the tuned runtime goes, kernel by kernel
    variant "$RUNTIME" --runtime "$RUNTIME" --precision "$PRECISION"
    profile "$RUNTIME" || echo "profile (rc=$?)" >> "$WORK/rows/$STAGE.failed"
    if [ "$RUNTIME" != torch ]; then
        variant torch --runtime torch --precision "$PRECISION"
    fi
}
profile() {  # profile RUNTIME: a torch.profiler table of PROFILE_ITERS calls at batch 1 on the first frame
    $PY - "$1" <<'EOF'
import json, os, sys
from pathlib import Path
import torch
from torch.profiler import ProfilerActivity, profile
from benchmarks.parity import load_frames
from benchmarks.prepare import ArtifactCache, RunnerSpec, make_runner

runtime, device, out = sys.argv[1], os.environ["DEVICE"], Path(os.environ["OUT"])
x = torch.from_numpy(load_frames(Path(os.environ["FRAMES"]))[0][1]).to(device)
spec = RunnerSpec(runtime, device, os.environ["PRECISION"])
runner, _ = make_runner(spec, ArtifactCache(Path(os.environ["CKPT"]), Path(os.environ["WORK"]) / "artifacts"), 1, *x.shape[-2:])
activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
key = "self_device_time_total" if device == "cuda" else "self_cpu_time_total"
iters = int(os.environ["PROFILE_ITERS"])
with runner:
    for _ in range(3):  # compile, autotune, lazy library setup: not what the table is about
        runner.infer(x)
    runner.synchronize()
    with profile(activities=activities) as prof:
        for _ in range(iters):
            runner.infer(x)
        runner.synchronize()
averages = prof.key_averages()
table = averages.table(sort_by=key, row_limit=40)
(out / f"profile_{spec.label}.txt").write_text(table + "\n")
print(table)
events = sorted((e for e in averages if getattr(e, key) > 0), key=lambda e: -getattr(e, key))
total = sum(getattr(e, key) for e in events) or 1.0
summary = {"runner": spec.label, "iters": iters, "time": key, "per_iter_ms": total / iters / 1e3,
           "top": [{"name": e.key, "calls": e.count, "ms_per_iter": getattr(e, key) / iters / 1e3,
                    "share": getattr(e, key) / total} for e in events[:40]]}
(out / f"profile_{spec.label}.json").write_text(json.dumps(summary, indent=2, allow_nan=False))
EOF
}
cudnn() {  # cuDNN times its algorithms per shape instead of using its heuristic pick
    variant "$RUNTIME+cudnn" --runtime "$RUNTIME" --precision "$PRECISION" --cudnn-benchmark
    if [ "$RUNTIME" != torch ]; then
        variant torch+cudnn --runtime torch --precision "$PRECISION" --cudnn-benchmark
    fi
}
channels_last() {  # NHWC weights and input (tensor-core convolutions want it), then Inductor freezing on top
    variant "$RUNTIME+nhwc" --runtime "$RUNTIME" --precision "$PRECISION" --cudnn-benchmark --channels-last
    if [ "$RUNTIME" = compile ]; then
        variant "$RUNTIME+nhwc+frozen" --runtime "$RUNTIME" --precision "$PRECISION" --cudnn-benchmark --channels-last --freezing
    fi
    if [ "$RUNTIME" != torch ]; then
        variant torch+nhwc --runtime torch --precision "$PRECISION" --cudnn-benchmark --channels-last
    fi
}
cuda_graphs() {  # the best so far of the tuned runtime, replayed as one CUDA graph per call
    [ "$DEVICE" = cuda ] || skip "CUDA graphs need DEVICE=cuda"
    [ "$RUNTIME" = compile ] || skip "the explicit CUDA graph is a compile-runner option; RUNTIME=$RUNTIME"
    local options; options=$(best compile)
    [ -n "$options" ] || skip "no ok compile row to start from"
    variant best+graph $options --cuda-graph
}
batch() {  # throughput of the best variant at larger batches (images_per_s in each row)
    local options; options=$(best)
    [ -n "$options" ] || skip "no ok batch-1 row to start from"
    for size in $BATCHES; do
        variant "best@b$size" $options --batch "$size"
    done
}
parity() {  # the best variant against PyTorch fp32 and the authors' published outputs, on their frames
    local options; options=$(best)
    [ -n "$options" ] || skip "no ok batch-1 row to start from"
    echo "best variant: $options"
    cli bench parity_main -c "$CKPT" --device "$DEVICE" $options --inputs "$FRAMES" --expected "$PUBLISHED" \
        --workdir "$WORK/artifacts" --json "$OUT/parity_best.json" --markdown "$OUT/parity_best.md"
}
max_autotune() {  # Triton autotuning of the best compile variant (Inductor's own CUDA graphs left out)
    [ "$RUNTIME" = compile ] || skip "max-autotune is a torch.compile mode; RUNTIME=$RUNTIME"
    local options; options=$(best compile)
    [ -n "$options" ] || skip "no ok compile row to start from"
    variant best+max-autotune $options --compile-mode max-autotune-no-cudagraphs
}
aoti() {  # AOTInductor at full size: built in one process, verified into the work folder and timed in fresh ones (C++ stacks on)
    local folder="$WORK/aoti" name size
    size=$($PY -c "import sys; from dmphn_core.imageio import list_images, read_image; h, w = read_image(list_images(sys.argv[1])[0]).shape[:2]; print(h, w)" "$FRAMES")
    name="aoti_b1_${size% *}x${size#* }_${DEVICE}_${PRECISION}.pt2"
    mkdir -p "$folder/built"
    echo "--- build $name (not loaded here)"
    $PY - "$CKPT" "$folder/built/$name" $size <<'EOF' || return 1
import os, sys
from dmphn_core.checkpoint import load_checkpoint
from export.exporter import exporter_for
model = load_checkpoint(sys.argv[1]).build_model()
info = exporter_for("aoti").build(model, sys.argv[2], batch=1, height=int(sys.argv[3]), width=int(sys.argv[4]),
                                  device=os.environ["DEVICE"], precision=os.environ["PRECISION"])
print(*info.get("log_lines", []), sep="\n")
EOF
    echo "--- verify it into the work folder's artifact store, in a fresh process"
    TORCH_SHOW_CPP_STACKTRACES=1 $PY - "$CKPT" "$folder/built/$name" "$folder" $size <<'EOF' || return 1
import os, sys
from pathlib import Path
from dmphn_core.checkpoint import load_checkpoint
from export.cache import ArtifactStore
model = load_checkpoint(sys.argv[1]).build_model()
path = ArtifactStore(Path(sys.argv[3])).adopt(model, "aoti", sys.argv[2], 1, int(sys.argv[4]), int(sys.argv[5]),
                                              os.environ["DEVICE"], os.environ["PRECISION"])
print(f"verified as {path}")
EOF
    echo "--- load and time it in a fresh process"
    TORCH_SHOW_CPP_STACKTRACES=1 variant aoti --runtime aoti --precision "$PRECISION" --workdir "$folder"  # the last --workdir wins
}

# -- out of the timed path: only when named ------------------------------------------------------
trt() {  # a TensorRT fp16 engine built (overflow guard, timing cache) and timed
    variant trt --runtime trt --precision "$PRECISION"
}
tests() {
    # Only the GPU-marked tests; modules whose imports need packages the device lacks
    # (openvino, tritonclient) must not stop the others from being collected.
    $PY -m pytest -m gpu -p no:cacheprovider --continue-on-collection-errors -v -rfEs --timeout 300 \
        $($PY -c "import xdist" 2>/dev/null && printf -- "-n 8") --junitxml "$OUT/tests_gpu.xml" --ignore tests/cpp tests
}
train() {
    cli synth main "$WORK/data" --split train --split val --pairs-per-photo 2 --size 256x256 &&
    cli train main "$WORK/data" -o "$WORK/run" --levels 1-2-4-8 --batch 6 --crop 256 --steps "$TRAIN_STEPS" \
        --amp "$AMP" --device "$DEVICE" --val-every 1000 --ckpt-every 1000 --log-every 20 --workers 4 --no-progress
}
cpp_build() {
    # The C++ build needs libpng and nlohmann-json headers; a bare machine gets them from the
    # Debian packages in $DEBS (unpacked, not installed: no apt there), without replacing its own.
    local lib=/usr/lib/x86_64-linux-gnu
    if [ -n "$DEBS" ]; then
        [ -f /usr/include/nlohmann/json.hpp ] || dpkg -x "$DEBS"/nlohmann-json3-dev_*.deb /
        [ -f /usr/include/zlib.h ] || { dpkg -x "$DEBS"/zlib1g-dev_*.deb /; ln -sf libz.so.1 $lib/libz.so; }
        ls $lib/libpng16.so.16* >/dev/null 2>&1 || dpkg -x "$DEBS"/libpng16-16_*.deb /
        [ -f /usr/include/png.h ] || { dpkg -x "$DEBS"/libpng-dev_*.deb /; ln -sf libpng16.so.16 $lib/libpng16.so;
                                       ln -sf libpng16.so $lib/libpng.so; }
    fi
    PYTHON=$PY JOBS=8 DMPHN_NO_INSTALL=1 bash scripts/build_cpp.sh
}
cpp() {  # the C++ tool's GPU tests (after cpp_build this is an incremental no-op build)
    PYTHON=$PY $PY -m pytest -m gpu -p no:cacheprovider -q -rs --timeout 300 --junitxml "$OUT/tests_cpp_gpu.xml" tests/cpp
}

# CPU stages: a lent machine's processor may be an Intel Xeon with AMX, which the development
# machines are only some days; these time #16's CPU runtimes x precisions at 2 threads pinned
# to CPU_CORES, on the frames in REF (the main table in one process, as the reports need).
cpu_prep() {  # the float artifacts built and verified with every core (not timed); the int8 IR verified in
    mkdir -p "$WORK/cpu" && $PY - "$CKPT" "$FRAMES" "$WORK/cpu" <<'EOF'
import os, sys, time
from pathlib import Path
from benchmarks.prepare import ArtifactCache
from dmphn_core.imageio import list_images, read_image
from export.cache import ArtifactStore
height, width = read_image(list_images(sys.argv[2])[0]).shape[:2]
cache = ArtifactCache(Path(sys.argv[1]), Path(sys.argv[3]))
for fmt in ("onnx", "openvino"):
    begin = time.perf_counter()
    path = cache.artifact(fmt, 1, height, width, "cpu", "fp32")
    print(f"{path.name}: built and verified in {time.perf_counter() - begin:.1f} s", flush=True)
if os.environ.get("INT8_IR"):  # NNCF's accuracy control takes too long for a lease: an IR made elsewhere, at the bench's bar
    (ir,) = sorted(Path(os.environ["INT8_IR"]).glob("*.xml"))
    path = ArtifactStore(Path(sys.argv[3])).adopt(cache.model, "openvino", ir, 1, height, width, "cpu", "int8", min_psnr=0.0)
    print(f"{ir} verified as {path.name}", flush=True)
EOF
}
cpu_bench() {  # no fp16: OpenVINO fp16 on AVX512-FP16 without AMX-FP16 took the rest of a 300 s cap (2026-11-26)
    PIN=$CPU_CORES cli bench bench_main -c "$CKPT" --runtime torch-ref,torch,ov --precision fp32,bf16,int8 --device cpu --threads 2 \
        --inputs "$FRAMES" --warmup 1 --iters 3 --workdir "$WORK/cpu" --json "$OUT/bench_cpu_2t.json" --markdown "$OUT/bench_cpu_2t.md"
}
cpu_layout() {  # eager PyTorch on the CPU, memory format x precision: one dmphn-bench process per pair
    local precision layout
    for precision in fp32 bf16; do
        for layout in --no-channels-last --channels-last; do
            PIN=$CPU_CORES DEVICE=cpu WARMUP=1 ITERS=2 variant "torch-$precision$layout" --runtime torch-ref,torch \
                --precision "$precision" $layout --threads 2
        done
    done
}
cpu_parity() {  # quality only, with every core
    cli bench parity_main -c "$CKPT" --runtime torch-ref,torch,ov --precision bf16,fp16,int8 --device cpu \
        --inputs "$FRAMES" --workdir "$WORK/cpu" --json "$OUT/parity_cpu.json" --markdown "$OUT/parity_cpu.md"
}
cpu_ort() {  # ONNX Runtime fp32 beside a fresh per-patch baseline (its int8 needs a long calibration at full size)
    PIN=$CPU_CORES cli bench bench_main -c "$CKPT" --runtime torch-ref,ort --precision fp32 --device cpu --threads 2 \
        --inputs "$FRAMES" --warmup 1 --iters 3 --workdir "$WORK/cpu" --json "$OUT/bench_cpu_2t_ort.json" --markdown "$OUT/bench_cpu_2t_ort.md"
}
export -f cli append_rows variant best skip profile "${default_stages[@]}" "${extra_stages[@]}"

# -- the driver ------------------------------------------------------------------------------------
record() {  # record STAGE STATUS RC SECONDS CAP REASON: one line of stages.jsonl
    $PY -c 'import json, sys; n, s, rc, sec, cap, why = sys.argv[1:]; print(json.dumps({"stage": n, "status": s, "rc": int(rc), "seconds": int(sec), "cap_s": int(cap), "reason": why or None}))' \
        "$@" >> "$OUT/stages.jsonl"
}
if [ -n "$WHEELS" ]; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" "$WHEELS"/*.whl
fi
if [ -n "$OV_SITE" ]; then
    mkdir -p "$WORK/site" && $PY -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2], filter='tar')" "$OV_SITE" "$WORK/site"
fi
for name in "${stages[@]}"; do
    left=$((DEADLINE - (SECONDS - START) - RESERVE))
    if [ "$left" -lt "$MIN_STAGE" ]; then
        echo "=== $name skipped: ${left}s left before the ${DEADLINE}s deadline"
        record "$name" skipped 0 0 0 "deadline: ${left}s left of ${DEADLINE}s"
        continue
    fi
    cap=${caps[$name]}
    [ "$cap" -gt "$left" ] && cap=$left
    echo "=== $name (cap ${cap}s, $((SECONDS - START))s elapsed) $(date -u +%H:%M:%S)"
    began=$SECONDS
    rm -f "$WORK/rows/$name.failed"
    STAGE=$name timeout --kill-after=5 "$cap" bash -c "$name" > "$OUT/$name.log" 2>&1
    rc=$?
    case $rc in
        0) status=ok reason= ;;
        75) status=skipped reason=$(grep -m1 '^skipped: ' "$OUT/$name.log" | cut -c10-) ;;
        124|137) status=timeout reason="cut at its ${cap}s cap" ;;
        *) status=error reason=$(grep -m1 -E '^(error|Error|Traceback|Fatal)' "$OUT/$name.log") ;;
    esac
    if [ "$status" = ok ] && [ -f "$WORK/rows/$name.failed" ]; then
        status=error reason="failed: $(paste -sd, "$WORK/rows/$name.failed")"
    fi
    echo "=== $name: $status rc=$rc in $((SECONDS - began))s"
    tail -n 15 "$OUT/$name.log"
    record "$name" "$status" "$rc" "$((SECONDS - began))" "$cap" "$reason"
    [ -z "$BUNDLE" ] || tar -czf "$BUNDLE" -C "$OUT" .
done
echo "=== done in $((SECONDS - START))s; rows: $OUT/rows.jsonl, stages: $OUT/stages.jsonl"
