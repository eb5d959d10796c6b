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
set -u
OUT=${OUT:?set OUT to a folder for the results}
REF=${REF:?set REF to the authors reference folder}
WHEELS=${WHEELS:-}  # folder of extra wheels (onnxslim)
DEBS=${DEBS:-}      # folder of Debian packages for the C++ build (libpng-dev, nlohmann-json3-dev, zlib1g-dev)
PY=${PY:-python3}
WORK=${WORK:-/tmp/dmphn-gpu}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1 DMPHN_REFERENCE_DIR="$REF" DMPHN_CACHE="$WORK/cache"
export PYTHONPATH="$PWD${WHEELS:+:$WORK/site}"
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(facts cpp_build\& tests bench parity train cpp compiled)

if [ -n "$WHEELS" ]; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" "$WHEELS"/*.whl
fi
CKPT="$WORK/authors_1_2_4_8.pt"
FRAMES="$REF/test_samples"
PUBLISHED="$REF/test_results/DMPHN_1_2_4_8_test_res"
cli() {  # cli MODULE FUNCTION ARGS...: a console script without installing the package
    local module=$1 function=$2; shift 2
    $PY -X faulthandler -c "import sys; sys.argv[0] = '$function'; from cli.$module import $function; $function()" "$@"
}
stage() {  # stage NAME CAP_SECONDS COMMAND...: run, log, time, never abort the script
    local name=$1 cap=$2; shift 2
    local start=$SECONDS
    echo "=== $name (cap ${cap}s) $(date -u +%H:%M:%S)"
    timeout --kill-after=10 "$cap" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    echo "=== $name rc=$rc in $((SECONDS - start))s"
    tail -n 25 "$OUT/$name.log"
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

declare -A caps=([facts]=45 [cpp_build]=240 [tests]=300 [bench]=90 [compiled]=200 [parity]=60 [train]=45 [cpp]=90)
for entry in "${stages[@]}"; do
    name=${entry%\&}
    [ "$name" = cpp ] && wait  # the background C++ build
    run=(stage "$name" "${caps[$name]}" bash -c "$(declare -f cli facts tests bench compiled parity train cpp_build cpp); \
        PY='$PY' CKPT='$CKPT' FRAMES='$FRAMES' PUBLISHED='$PUBLISHED' WORK='$WORK' REF='$REF' OUT='$OUT' DEVICE='$DEVICE' DEBS='$DEBS' TRAIN_STEPS='${TRAIN_STEPS:-120}' AMP='${AMP:-bf16}'; $name")
    if [ "$name" != "$entry" ]; then "${run[@]}" & else "${run[@]}"; fi
done
wait
