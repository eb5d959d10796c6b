#!/bin/bash
# Issue 29's ExecuTorch targets on this machine's CPU, from a clone with .venv set up, in one go:
#   inputs   the authors' DMPHN-1-2-4-8 imported ($WORK/authors-1248.pt, unless CKPT names one) and their
#            frames at two sizes: as published (LARGE, 720x1280) and SMALL (352x640: each frame resized
#            bicubic to SMALL's width, centre rows kept; the copies every earlier 352x640 result used)
#   export   every artifact the rows need, built and verified into $WORK/artifacts (nothing timed)
#   parity   int8 of $RUNTIMES against PyTorch fp32 on every frame of both sizes (PSNR per frame)
#   bench    one round-robin dmphn-bench per size: torch-ref and $RUNTIMES x fp32, int8; $ROUNDS rounds
#   pairs    SMALL only: torch-ref fp32 vs et int8, $PAIRS one-call rounds (the per-round ratio settles)
#   verdict  targets.json + a line per target (python -m benchmarks.et_targets); exit 1 if one is not met
# Usage: bash benchmarks/executorch_targets.sh [STAGE ...]   (default: every stage, in that order)
# Env: REF (the authors' folder; default $DMPHN_REFERENCE_DIR or ../shared/reference/dmphn-authors),
#      OUT (results; default benchmarks/results/executorch-targets-<date>), WORK (default /tmp/dmphn-et-targets),
#      PY (default .venv/bin/python), CKPT, THREADS=2, ROUNDS=6, PAIRS=40, SMALL=352x640, RUNTIMES=ort,ov,et.
# Time it on an idle machine: every row is timed round-robin, and `uptime` is logged around each stage.
set -uo pipefail
cd "$(dirname "$0")/.."
REF=${REF:-${DMPHN_REFERENCE_DIR:-../shared/reference/dmphn-authors}}
OUT=${OUT:-benchmarks/results/executorch-targets-$(date -u +%Y-%m-%d)}
WORK=${WORK:-/tmp/dmphn-et-targets}
PY=${PY:-.venv/bin/python}
CKPT=${CKPT:-$WORK/authors-1248.pt}
THREADS=${THREADS:-2} ROUNDS=${ROUNDS:-6} PAIRS=${PAIRS:-40} SMALL=${SMALL:-352x640} RUNTIMES=${RUNTIMES:-ort,ov,et}
LARGE_FRAMES="$REF/test_samples" SMALL_FRAMES="$WORK/frames-$SMALL"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
mkdir -p "$OUT" "$WORK"
LOG="$OUT/executorch_targets.log"

say() { echo "== $* ($(date -u +%H:%M:%S) UTC; $(uptime | sed 's/.*load/load/'))" | tee -a "$LOG"; }
tool() {  # tool MODULE FUNCTION ARGS...: a console script of this checkout, output also in the log
    local module=$1 function=$2; shift 2
    "$PY" -c "import sys; sys.argv[0] = 'dmphn-$function'; from cli.$module import ${function}_main; ${function}_main()" "$@" 2>&1 | tee -a "$LOG"
    return "${PIPESTATUS[0]}"
}
large() { "$PY" -c "import sys; from dmphn_core.imageio import list_images, read_image; h, w = read_image(list_images(sys.argv[1])[0]).shape[:2]; print(f'{h}x{w}')" "$LARGE_FRAMES"; }
COMMON=(-c "$CKPT" --device cpu --threads "$THREADS" --workdir "$WORK/artifacts")

inputs() {
    [ -d "$LARGE_FRAMES" ] || { echo "error: no frames in $LARGE_FRAMES (set REF)" >&2; return 2; }
    if [ ! -f "$CKPT" ]; then
        "$PY" -c "from cli.ckpt import main; main()" import-authors "$REF/checkpoints/DMPHN_1_2_4_8" -o "$CKPT" 2>&1 | tee -a "$LOG"
        [ "${PIPESTATUS[0]}" -eq 0 ] || return 1
    fi
    "$PY" - "$LARGE_FRAMES" "$SMALL_FRAMES" "$SMALL" <<'EOF' 2>&1 | tee -a "$LOG"
import sys
from pathlib import Path
from PIL import Image
from dmphn_core.imageio import list_images
source, target, (height, width) = Path(sys.argv[1]), Path(sys.argv[2]), map(int, sys.argv[3].split("x"))
target.mkdir(parents=True, exist_ok=True)
for frame in list_images(source):
    image = Image.open(frame).convert("RGB")
    resized = image.resize((width, round(image.height * width / image.width)), Image.BICUBIC)
    top = (resized.height - height) // 2  # 720x1280 -> 360x640, rows 4..355
    resized.crop((0, top, width, top + height)).save(target / frame.name)
print(f"{len(list_images(target))} frames at {height}x{width} in {target}")
EOF
    return "${PIPESTATUS[0]}"
}
export_all() {
    local size
    for size in "$SMALL" "$(large)"; do
        tool bench bench "${COMMON[@]}" --runtime "torch-ref,$RUNTIMES" --precision fp32,int8 --shape "$size" --prepare-only || return 1
    done
}
parity() {
    tool bench parity "${COMMON[@]}" --runtime "$RUNTIMES" --precision int8 --inputs "$SMALL_FRAMES" \
        --json "$OUT/parity_${SMALL}_int8.json" --markdown "$OUT/parity_${SMALL}_int8.md"
    tool bench parity "${COMMON[@]}" --runtime "$RUNTIMES" --precision int8 --inputs "$LARGE_FRAMES" \
        --json "$OUT/parity_$(large)_int8.json" --markdown "$OUT/parity_$(large)_int8.md"
    return 0  # a frame under the tolerance is a finding for the verdict, not a failed stage
}
bench() {
    tool bench bench "${COMMON[@]}" --runtime "torch-ref,$RUNTIMES" --precision fp32,int8 --inputs "$SMALL_FRAMES" \
        --warmup 1 --iters 3 --rounds "$ROUNDS" --json "$OUT/bench_${SMALL}.json" --markdown "$OUT/bench_${SMALL}.md" || return 1
    tool bench bench "${COMMON[@]}" --runtime "torch-ref,$RUNTIMES" --precision fp32,int8 --inputs "$LARGE_FRAMES" \
        --warmup 1 --iters 1 --rounds "$(( ROUNDS > 3 ? ROUNDS / 2 : ROUNDS ))" \
        --json "$OUT/bench_$(large).json" --markdown "$OUT/bench_$(large).md"
}
pairs() {
    tool bench bench "${COMMON[@]}" --runtime torch-ref,et --precision int8,fp32 --inputs "$SMALL_FRAMES" \
        --warmup 1 --iters 1 --rounds "$PAIRS" --json "$OUT/bench_${SMALL}_pairs.json" --markdown "$OUT/bench_${SMALL}_pairs.md"
}
verdict() {
    local reports=() parities=() file
    for file in "$OUT"/bench_*.json; do [ -f "$file" ] && reports+=("$file"); done
    for file in "$OUT"/parity_*_int8.json; do [ -f "$file" ] && parities+=("$file"); done
    "$PY" -m benchmarks.et_targets --bench "${reports[@]}" --parity "${parities[@]}" -o "$OUT/targets.json" 2>&1 | tee -a "$LOG"
    return "${PIPESTATUS[0]}"
}

STAGES=("$@")
[ ${#STAGES[@]} -gt 0 ] || STAGES=(inputs export parity bench pairs verdict)
for stage in "${STAGES[@]}"; do
    case $stage in inputs|export|parity|bench|pairs|verdict) ;; *) echo "error: unknown stage $stage (inputs, export, parity, bench, pairs, verdict)" >&2; exit 2 ;; esac
done
grep -m1 "model name" /proc/cpuinfo | tee -a "$LOG"
for stage in "${STAGES[@]}"; do
    say "stage $stage"
    if [ "$stage" = export ]; then export_all; else "$stage"; fi
    rc=$?
    if [ "$stage" = verdict ]; then exit $rc; fi
    [ $rc -eq 0 ] || { say "stage $stage failed (rc=$rc)"; exit 1; }
done
