#!/usr/bin/env bash
# Build the C++ part (cpp/: library `dmphn` + tool `dmphn_infer`) into cpp/build, Release.
# Idempotent and incremental: a second run only rebuilds what changed.
# The last line printed is the absolute path of dmphn_infer.
#
#   PYTHON=.venv/bin/python    Python whose torch (LibTorch), onnxruntime and openvino wheels are used
#                              (the openvino wheel's OpenVINOConfig.cmake builds the openvino backend)
#   BUILD_DIR=cpp/build        build folder;  JOBS=2  parallel compile jobs
#   DMPHN_FETCH_ORT_HEADERS=1  also fetch the ONNX Runtime C++ headers when missing (see
#                              scripts/install_cpp_deps.sh) so the onnxruntime backend compiles;
#                              headers already in cpp/third_party/onnxruntime are always used
#   DMPHN_NO_INSTALL=1         never run apt; fail with the command to run when packages are missing
#   ONNXRUNTIME_ROOT, TENSORRT_ROOT   SDK folders (include/, lib/), passed on to CMake
#   CMAKE_ARGS="..."           extra CMake arguments, e.g. -DDMPHN_WITH_AOTI=OFF
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
BUILD_DIR=${BUILD_DIR:-cpp/build}
JOBS=${JOBS:-2}
ORT_HEADER=cpp/third_party/onnxruntime/include/onnxruntime/onnxruntime_cxx_api.h

# System packages and the optional ONNX Runtime headers come from scripts/install_cpp_deps.sh
# (scripts/setup.sh runs it). A person running this script gets them installed when missing;
# the test suite sets DMPHN_NO_INSTALL=1 so that pytest never runs apt.
if [ ! -f /usr/include/nlohmann/json.hpp ] || [ ! -f /usr/include/png.h ] \
        || { [ "${DMPHN_FETCH_ORT_HEADERS:-0}" = 1 ] && [ ! -f "$ORT_HEADER" ]; }; then
    if [ "${DMPHN_NO_INSTALL:-0}" = 1 ]; then
        [ -f /usr/include/nlohmann/json.hpp ] && [ -f /usr/include/png.h ] || {
            echo "error: nlohmann-json3-dev or libpng-dev is missing; run: bash scripts/install_cpp_deps.sh" >&2
            exit 1
        }
    else
        ORT_HEADERS=${DMPHN_FETCH_ORT_HEADERS:-0} bash scripts/install_cpp_deps.sh
    fi
fi

TORCH_PREFIX=$("$PYTHON" -c 'import torch; print(torch.utils.cmake_prefix_path)')
cmake_args=(-S cpp -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release
            "-DCMAKE_PREFIX_PATH=$TORCH_PREFIX" "-DDMPHN_PYTHON=$(realpath -s "$PYTHON")")
[ -n "${ONNXRUNTIME_ROOT:-}" ] && cmake_args+=("-DONNXRUNTIME_ROOT=$ONNXRUNTIME_ROOT")
[ -n "${TENSORRT_ROOT:-}" ] && cmake_args+=("-DTENSORRT_ROOT=$TENSORRT_ROOT")
# shellcheck disable=SC2206  # CMAKE_ARGS is a list of words on purpose
[ -n "${CMAKE_ARGS:-}" ] && cmake_args+=(${CMAKE_ARGS})

# Configure once; `cmake --build` re-runs it by itself when a CMakeLists.txt changes.
# Configure again when the arguments change (another Python, new SDK paths) or when ONNX
# Runtime headers arrived after the last configure.
stamp="$BUILD_DIR/.build_cpp_args"
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ] || [ "$(cat "$stamp" 2>/dev/null)" != "${cmake_args[*]}" ] \
        || { [ -f "$ORT_HEADER" ] && ! grep -q "^ONNXRUNTIME_INCLUDE_DIR:PATH=/" "$BUILD_DIR/CMakeCache.txt"; }; then
    cmake "${cmake_args[@]}"
    echo "${cmake_args[*]}" > "$stamp"
fi
cmake --build "$BUILD_DIR" -j "$JOBS"

realpath "$BUILD_DIR/dmphn_infer"
