#!/usr/bin/env bash
# Make .venv from nothing and install the toolkit with its test tools.
#   CPU host: a pinned CPU torch first (an unpinned torch would pull a multi-GB CUDA build).
#   CUDA host (nvidia-smi sees a GPU): the CUDA torch and the [gpu] extra.
#   CPU host: also the [edge] extra (ExecuTorch; DMPHN_SKIP_EDGE=1 skips it, and its tests then say so).
#   Then the C++ part's system packages (scripts/install_cpp_deps.sh; DMPHN_SKIP_CPP_DEPS=1 skips).
# Override with TORCH_SPEC (e.g. "torch==2.11.0").
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
PIP="$VENV/bin/python -m pip"

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
$PIP install -q --upgrade pip

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    $PIP install -q ${TORCH_SPEC:-torch}
    $PIP install -q -e ".[dev,gpu]"
    $PIP uninstall -q -y onnxruntime || true
    $PIP install -q onnxruntime-gpu
else
    $PIP install -q ${TORCH_SPEC:-torch==2.13.0}
    $PIP install -q -e ".[dev]"
fi
# ExecuTorch (runner `et`, C++ backend executorch): an extra because of its size, installed here
# so that the tests of the edge path run rather than skip. CPU hosts only: executorch 1.5.1 is
# built against the pinned torch 2.13.0, not whatever CUDA torch a GPU host has.
if [ "${DMPHN_SKIP_EDGE:-0}" != 1 ] && ! { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; }; then
    $PIP install -q -e ".[edge]"
fi
# The C++ part's system packages and ONNX Runtime headers (tests/cpp builds cpp/): an explicit
# step here, so that pytest never runs apt. Optional: without root or apt it only warns.
if [ "${DMPHN_SKIP_CPP_DEPS:-0}" != 1 ]; then
    bash scripts/install_cpp_deps.sh || echo "setup: C++ dependencies not installed; tests/cpp will say what is missing" >&2
fi

# Triton Inference Server for dmphn-serve / dmphn-loadtest: the wheel bundles tritonserver, its
# Python backend and per-Python stubs. --no-deps: its own Python package pins numpy<2, which
# would downgrade numpy under opencv; the toolkit runs the binary and never imports that package.
$PIP install -q --no-deps "nvidia-pytriton==0.7.0"
"$VENV/bin/python" -c "from runtimes.triton_server import find_distribution, check_python_stub; \
print('tritonserver', check_python_stub(find_distribution()).parent.parent.parent)" \
    || echo "warning: dmphn-serve will not work here (see the line above); the rest of the toolkit does"
"$VENV/bin/python" -c "import torch, onnxruntime; print('torch', torch.__version__, '| onnxruntime', onnxruntime.__version__, '| cuda', torch.cuda.is_available())"
