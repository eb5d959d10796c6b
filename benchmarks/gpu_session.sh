#!/usr/bin/env bash
# Every CUDA check and benchmark of the toolkit, as one script for a short lease of a GPU machine.
#
#   OUT=results/ REF=path/to/dmphn-authors WHEELS=folder bash benchmarks/gpu_session.sh [STAGE ...]
#
# Runs on a machine whose python3 already has CUDA torch (the device image: torch, onnx,
# onnxruntime, scikit-image, typer...); missing pure-Python wheels (onnxslim) come from $WHEELS.
# REF is the authors' reference folder (checkpoints/DMPHN_1_2_4_8, test_samples, their outputs).
# Stages (default: facts cpp_build& tests bench parity train cpp compiled; a trailing & runs a
# stage in the background, beside the next ones; `cpp` waits for it). Each stage has its own
# time cap, so one that hangs or fails leaves the others' results; everything lands in $OUT
# (logs, JUnit XML, bench/parity JSON and markdown). DEVICE=cpu with small frames in REF
# rehearses the script on a machine without a GPU. All stages take about 10 minutes on an H200
# (2026-11-26: tests alone were still running after 150 s); split them over calls to fit a lease.
#
# The cpu_* stages (never by default) use the lent machine's other asset, an Intel Xeon with AMX:
# cpu_prep cpu_bench cpu_parity cpu_layout cpu_ort time and judge the CPU runtimes x precisions
# of issue 16 at 2 threads pinned to CPU_CORES. The machine has no openvino and no NNCF, so
# OV_SITE brings the openvino wheel's files (a tar.xz) and INT8_IR the int8 IR made elsewhere.
set -u
OUT=${OUT:?set OUT to a folder for the results}
REF=${REF:?set REF to the authors reference folder}
WHEELS=${WHEELS:-}  # folder of extra wheels (onnxslim)
DEBS=${DEBS:-}      # folder of Debian packages for the C++ build (libpng-dev, nlohmann-json3-dev, zlib1g-dev)
PY=${PY:-python3}
WORK=${WORK:-/tmp/dmphn-gpu}
DEVICE=${DEVICE:-cuda}
OV_SITE=${OV_SITE:-}         # cpu_* stages: tar.xz of the openvino wheel's files (the device has no openvino)
INT8_IR=${INT8_IR:-}         # cpu_* stages: folder with openvino_b1_<H>x<W>_cpu_int8.{xml,bin} made elsewhere (no NNCF there)
CPU_CORES=${CPU_CORES:-2,3}  # cpu_* stages: the two cores the 2-thread timings are pinned to
BUNDLE=${BUNDLE:-}           # after each stage, a tar.gz of $OUT here (a lease returns 8 files at most)
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1 DMPHN_REFERENCE_DIR="$REF" DMPHN_CACHE="$WORK/cache"
export PYTHONPATH="$PWD${WHEELS:+:$WORK/site}"
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(facts cpp_build\& tests bench parity train cpp compiled)

if [ -n "$WHEELS" ]; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" "$WHEELS"/*.whl
fi
if [ -n "$OV_SITE" ]; then
    mkdir -p "$WORK/site" && $PY -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2], filter='tar')" "$OV_SITE" "$WORK/site"
    export PYTHONPATH="$PWD:$WORK/site"
fi
CKPT="$WORK/authors_1_2_4_8.pt"
FRAMES="$REF/test_samples"
PUBLISHED="$REF/test_results/DMPHN_1_2_4_8_test_res"
cli() {  # [PIN=CORES] cli MODULE FUNCTION ARGS...: a console script without installing the package (pinned with taskset)
    local module=$1 function=$2; shift 2
    ${PIN:+taskset -c "$PIN"} $PY -X faulthandler -c "import sys; sys.argv[0] = '$function'; from cli.$module import $function; $function()" "$@"
}
stage() {  # stage NAME CAP_SECONDS COMMAND...: run, log, time, never abort the script
    local name=$1 cap=$2; shift 2
    local start=$SECONDS
    echo "=== $name (cap ${cap}s) $(date -u +%H:%M:%S)"
    timeout --kill-after=10 "$cap" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    echo "=== $name rc=$rc in $((SECONDS - start))s"
    tail -n 25 "$OUT/$name.log"
    [ -z "$BUNDLE" ] || tar -czf "$BUNDLE" -C "$OUT" .
}

facts() {
    date -u; nvidia-smi; $PY - <<'EOF'
import platform, torch, onnxruntime
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda,
      "cudnn", torch.backends.cudnn.version(), "gpu", torch.cuda.get_device_name(0))
print("onnxruntime", onnxruntime.__version__, onnxruntime.get_available_providers())
try:
    import tensorrt
    print("tensorrt", tensorrt.__version__)
except ImportError as exc:
    print("tensorrt: not importable:", exc)
EOF
    lscpu | grep -E "Model name|^CPU\(s\)"
    cli ckpt main import-authors "$REF/checkpoints/DMPHN_1_2_4_8" -o "$CKPT"
}
tests() {
    # Only the GPU-marked tests; modules whose imports need packages the device lacks
    # (openvino, tritonclient) must not stop the others from being collected.
    # -v: each test's name and verdict is printed as it ends, so a stage cut by its cap still
    # says which tests failed (the JUnit file is written only at the end).
    $PY -m pytest -m gpu -p no:cacheprovider --continue-on-collection-errors -v -rfEs --timeout 300 \
        $($PY -c "import xdist" 2>/dev/null && printf -- "-n 8") --junitxml "$OUT/tests_gpu.xml" --ignore tests/cpp tests
}
bench() {
    cli bench bench_main -c "$CKPT" --runtime torch-ref,torch,torchscript,ort,trt --device $DEVICE \
        --precision fp32,tf32,fp16,bf16 --inputs "$FRAMES" --warmup 5 --iters 30 --workdir "$WORK/artifacts" \
        --json "$OUT/bench_cuda_720p.json" --markdown "$OUT/bench_cuda_720p.md"
}
compiled() {  # torch.compile in one process; each AOTInductor precision in its own (a crash loses one row)
    cli bench bench_main -c "$CKPT" --runtime compile --device $DEVICE --precision fp16,bf16,fp32 \
        --inputs "$FRAMES" --warmup 5 --iters 30 --workdir "$WORK/artifacts" \
        --json "$OUT/bench_cuda_720p_compile.json" --markdown "$OUT/bench_cuda_720p_compile.md"
    for precision in fp16 fp32 bf16; do
        cli bench bench_main -c "$CKPT" --runtime aoti --device $DEVICE --precision $precision \
            --inputs "$FRAMES" --warmup 5 --iters 30 --workdir "$WORK/artifacts" \
            --json "$OUT/bench_cuda_720p_aoti_$precision.json"
    done
}
parity() {
    cli bench parity_main -c "$CKPT" --runtime torch-ref,torch,torchscript --device $DEVICE \
        --precision fp32,fp16,bf16 --inputs "$FRAMES" --expected "$PUBLISHED" --workdir "$WORK/artifacts" \
        --json "$OUT/parity_cuda_720p.json" --markdown "$OUT/parity_cuda_720p.md"
}
train() {
    cli synth main "$WORK/data" --split train --split val --pairs-per-photo 2 --size 256x256 &&
    cli train main "$WORK/data" -o "$WORK/run" --levels 1-2-4-8 --batch 6 --crop 256 --steps ${TRAIN_STEPS:-120} \
        --amp ${AMP:-bf16} --device $DEVICE --val-every 1000 --ckpt-every 1000 --log-every 20 --workers 4 --no-progress
}
cpp_build() {
    # The C++ build needs libpng and nlohmann-json headers; a bare machine gets them from the
    # Debian packages in $DEBS (unpacked, not installed: no apt there), without replacing its own.
    local lib=/usr/lib/x86_64-linux-gnu
    if [ -n "${DEBS:-}" ]; then
        [ -f /usr/include/nlohmann/json.hpp ] || dpkg -x "$DEBS"/nlohmann-json3-dev_*.deb /
        [ -f /usr/include/zlib.h ] || { dpkg -x "$DEBS"/zlib1g-dev_*.deb /; ln -sf libz.so.1 $lib/libz.so; }
        ls $lib/libpng16.so.16* >/dev/null 2>&1 || dpkg -x "$DEBS"/libpng16-16_*.deb /
        [ -f /usr/include/png.h ] || { dpkg -x "$DEBS"/libpng-dev_*.deb /; ln -sf libpng16.so.16 $lib/libpng16.so;
                                       ln -sf libpng16.so $lib/libpng.so; }
    fi
    PYTHON=$PY JOBS=8 DMPHN_NO_INSTALL=1 bash scripts/build_cpp.sh
}
cpp() {  # the C++ tool's GPU tests (the build above makes this an incremental no-op)
    PYTHON=$PY $PY -m pytest -m gpu -p no:cacheprovider -q -rs --timeout 300 --junitxml "$OUT/tests_cpp_gpu.xml" tests/cpp
}

# CPU stages: the lent machine's processor is an Intel Xeon with AMX, which the development
# machines are only some days; these time #16's CPU runtimes x precisions at 2 threads pinned
# to CPU_CORES, on the frames in REF (the main table in one process, as the reports need).
cpu_prep() {  # the float artifacts built and verified with every core (not timed); the int8 IR copied in
    mkdir -p "$WORK/cpu" && $PY - "$CKPT" "$FRAMES" "$WORK/cpu" <<'EOF'
import sys, time
from pathlib import Path
from benchmarks.prepare import ArtifactCache
from dmphn_core.imageio import list_images, read_image
height, width = read_image(list_images(sys.argv[2])[0]).shape[:2]
cache = ArtifactCache(Path(sys.argv[1]), Path(sys.argv[3]))
for fmt in ("onnx", "openvino"):
    begin = time.perf_counter()
    path = cache.artifact(fmt, 1, height, width, "cpu", "fp32")
    print(f"{path.name}: built and verified in {time.perf_counter() - begin:.1f} s", flush=True)
EOF
    [ $? -eq 0 ] && { [ -z "$INT8_IR" ] || cp -v "$INT8_IR"/openvino_b1_*_cpu_int8.* "$WORK/cpu/"; }
}
cpu_bench() {  # no fp16: OpenVINO fp16 on AVX512-FP16 without AMX-FP16 took the rest of a 300 s cap (2026-11-26)
    PIN=$CPU_CORES cli bench bench_main -c "$CKPT" --runtime torch-ref,torch,ov --precision fp32,bf16,int8 --device cpu --threads 2 \
        --inputs "$FRAMES" --warmup 1 --iters 3 --workdir "$WORK/cpu" --json "$OUT/bench_cpu_2t.json" --markdown "$OUT/bench_cpu_2t.md"
}
cpu_layout() {  # eager PyTorch on the CPU: memory format x precision, to choose the runner's defaults
    taskset -c "$CPU_CORES" $PY - "$CKPT" "$FRAMES" "$OUT/torch_layout_cpu_2t.json" <<'EOF'
import json, statistics, sys, time
from pathlib import Path
import torch
from dmphn_core.imageio import image_to_tensor, list_images, read_image, tensor_to_image
from dmphn_core.metrics import psnr
from runtimes.torch_eager import TorchReferenceRunner, TorchRunner
torch.set_num_threads(2)
x = image_to_tensor(read_image(list_images(sys.argv[2])[0]))
rows, reference = [], None
for cls in (TorchReferenceRunner, TorchRunner):
    for precision in ("fp32", "bf16"):
        for channels_last in (False, True):
            with cls(sys.argv[1], precision=precision, channels_last=channels_last, threads=2) as runner:
                out = runner.infer(x)
                times = []
                for _ in range(2):
                    begin = time.perf_counter()
                    runner.infer(x)
                    times.append(time.perf_counter() - begin)
            reference = out if reference is None else reference
            row = {"runtime": cls.runtime, "precision": precision, "channels_last": channels_last, "seconds": times,
                   "median_s": statistics.median(times), "psnr_vs_first_row_db": min(psnr(tensor_to_image(out), tensor_to_image(reference)), 999.0)}
            rows.append(row)
            print(json.dumps(row), flush=True)
Path(sys.argv[3]).write_text(json.dumps(rows, indent=2, allow_nan=False, default=str))
EOF
}
cpu_parity() {  # quality only, with every core
    cli bench parity_main -c "$CKPT" --runtime torch-ref,torch,ov --precision bf16,fp16,int8 --device cpu \
        --inputs "$FRAMES" --workdir "$WORK/cpu" --json "$OUT/parity_cpu.json" --markdown "$OUT/parity_cpu.md"
}
cpu_ort() {  # ONNX Runtime fp32 beside a fresh per-patch baseline (its int8 needs a long calibration at full size)
    PIN=$CPU_CORES cli bench bench_main -c "$CKPT" --runtime torch-ref,ort --precision fp32 --device cpu --threads 2 \
        --inputs "$FRAMES" --warmup 1 --iters 3 --workdir "$WORK/cpu" --json "$OUT/bench_cpu_2t_ort.json" --markdown "$OUT/bench_cpu_2t_ort.md"
}

declare -A caps=([facts]=45 [cpp_build]=240 [tests]=300 [bench]=90 [compiled]=200 [parity]=60 [train]=45 [cpp]=90
               [cpu_prep]=150 [cpu_bench]=300 [cpu_layout]=150 [cpu_parity]=150 [cpu_ort]=150)
for entry in "${stages[@]}"; do
    name=${entry%\&}
    [ "$name" = cpp ] && wait  # the background C++ build
    run=(stage "$name" "${caps[$name]}" bash -c "$(declare -f cli facts tests bench compiled parity train cpp_build cpp \
        cpu_prep cpu_bench cpu_layout cpu_parity cpu_ort); \
        PY='$PY' CKPT='$CKPT' FRAMES='$FRAMES' PUBLISHED='$PUBLISHED' WORK='$WORK' REF='$REF' OUT='$OUT' DEVICE='$DEVICE' DEBS='$DEBS' \
        TRAIN_STEPS='${TRAIN_STEPS:-120}' AMP='${AMP:-bf16}' INT8_IR='$INT8_IR' CPU_CORES='$CPU_CORES'; $name")
    if [ "$name" != "$entry" ]; then "${run[@]}" & else "${run[@]}"; fi
done
wait
