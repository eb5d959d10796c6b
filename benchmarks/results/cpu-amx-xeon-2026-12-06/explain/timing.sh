#!/bin/bash
# exclusive-lock timing session (one hold): dmphn-bench --profile, then the int8 float-hint round-robin and profiles
set -e
cd /work/wt/explain
export PYTHONPATH=$PWD DMPHN_CACHE=/work/cache-explain
PY=/work/main/.venv/bin/python
R=benchmarks/results/cpu-amx-xeon-2026-12-06/explain
echo "== start $(date -u)"; uptime
$PY -c "import sys; sys.argv=['dmphn-bench','-c','/work/cache-explain/authors1248.pt','--runtime','ort,ov','--precision','fp32,bf16,int8','--device','cpu','--inputs','/work/cache-explain/frames352','--threads','2','--warmup','1','--iters','3','--workdir','/work/cache-explain/work','--profile','--profile-top','12','--json','/work/cache-explain/bench_profile_352x640.json','--markdown','/work/cache-explain/bench_profile_352x640.md']; import cli.bench as b; b.bench_main()" > /work/cache-explain/bench_profile.log 2>&1 || echo "bench rc=$?"
echo "== bench done $(date -u)"; uptime
$PY $R/int8_float_hint.py time /work/cache-explain/work /work/cache-explain/authors1248.pt /work/cache-explain/frames352 /work/cache-explain/hint_time.json
echo "== time done $(date -u)"; uptime
$PY $R/int8_float_hint.py profile /work/cache-explain/work /work/cache-explain/authors1248.pt /work/cache-explain/frames352 /work/cache-explain/hint_profile.json
echo "== end $(date -u)"; uptime
