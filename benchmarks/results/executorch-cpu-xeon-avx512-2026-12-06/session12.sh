#!/bin/bash
# Session 12 (2026-12-06, 12:24-13:10 UTC): the issue-29 target rows again on an idle machine, the et int8
# program being the session-11 build (recipe 1) in the path-keyed work folder of the time; kept as run.
# 12:25 a first 10-round run (bench_352x640_s12_first10rounds.*), then measure.sh (40 one-call rounds and
# 10 rounds x 3 calls at 352x640), measure2.sh (12 rounds at 720x1280), measure3.sh (the fp32 target's rows).
set -uo pipefail
cd "$(dirname "$0")/../../.."
export PYTHONPATH=$PWD DMPHN_CACHE=/work/cache-bench-core
OUT=benchmarks/results/executorch-cpu-xeon-avx512-2026-12-06
F352=/work/cache-bench-core/frames-352x640 F720=/work/shared/reference/dmphn-authors/test_samples
bench() { .venv/bin/python -c "from cli.bench import bench_main; bench_main()" -c /work/cache-bench-core/authors-1248.pt \
            --device cpu --threads 2 --workdir /work/cache-bench-core/artifacts "$@"; uptime; date -u; }
uptime; date -u
bench --runtime torch-ref,et --precision fp32,int8 --inputs $F352 --warmup 1 --iters 3 --rounds 10 --json $OUT/bench_352x640_s12_first10rounds.json --markdown $OUT/bench_352x640_s12_first10rounds.md
bench --runtime torch-ref,et --precision fp32,int8 --inputs $F352 --warmup 1 --iters 1 --rounds 40 --json $OUT/bench_352x640_s12_40pairs.json --markdown $OUT/bench_352x640_s12_40pairs.md
bench --runtime torch-ref,et --precision fp32,int8 --inputs $F352 --warmup 1 --iters 3 --rounds 10 --json $OUT/bench_352x640_s12_10rounds.json --markdown $OUT/bench_352x640_s12_10rounds.md
bench --runtime torch-ref,et --precision int8,fp32 --inputs $F720 --warmup 1 --iters 1 --rounds 12 --json $OUT/bench_720x1280_s12_12rounds.json --markdown $OUT/bench_720x1280_s12_12rounds.md
bench --runtime torch-ref,ort,et --precision fp32 --inputs $F352 --warmup 1 --iters 3 --rounds 8 --json $OUT/bench_352x640_s12_fp32.json --markdown $OUT/bench_352x640_s12_fp32.md
# then, alone: python context_effect.py 15 (context_effect_352x640.*) and ROUNDS=0 python dyn_convs_sweep.py 352 640 current,dyn_out,dyn_out_blk,dyn_all
