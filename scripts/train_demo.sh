#!/usr/bin/env bash
# Train a demo checkpoint from nothing and install it as dmphn_core/assets/dmphn_demo.pt.
# The recipe of the shipped file's final stage (README, "The shipped demo checkpoint", lists
# the exact commands that produced it). Defaults fit a CPU; on a GPU train longer and larger,
# e.g.  LEVELS=1-2-4-8 CROP=256 STEPS=20000 MINUTES=20 bash scripts/train_demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
DATA=${DATA:-runs/demo_data}
OUT=${OUT:-runs/demo}
LEVELS=${LEVELS:-1}
CROP=${CROP:-64}
STEPS=${STEPS:-6000}
MINUTES=${MINUTES:-60}

[ -d "$DATA/train" ] || $BIN/dmphn-synth "$DATA" --pairs-per-photo 40 --test-pairs-per-photo 3 --size 256x256 --max-shift 24
$BIN/dmphn-train "$DATA" -o "$OUT" --levels "$LEVELS" --batch 6 --crop "$CROP" --lr 3e-4 --schedule cosine \
    --steps "$STEPS" --clip-grad 1.0 --val-every 500 --ckpt-every 500 --log-every 100 --workers 1 --max-minutes "$MINUTES"
$BIN/dmphn-ckpt slim "$OUT/best.pt" -o dmphn_core/assets/dmphn_demo.pt --fp16
$BIN/dmphn-eval "$DATA" --model dmphn_core/assets/dmphn_demo.pt --json "$OUT/eval_test.json" --markdown "$OUT/eval_test.md"
