#!/usr/bin/env bash
# Build the C++ part (cpp/: library `dmphn` + tool `dmphn_infer`) into cpp/build, Release.
# Idempotent and incremental: a second run only rebuilds what changed.
# The last line printed is the absolute path of dmphn_infer.
#
#   PYTHON=.venv/bin/python    Python whose torch (LibTorch), onnxruntime and openvino wheels are used
#                              (the openvino wheel's OpenVINOConfig.cmake builds the openvino backend)
#   BUILD_DIR=cpp/build        build folder;  JOBS=2  parallel compile jobs
#   DMPHN_FETCH_ORT_HEADERS=1  fetch the ONNX Runtime C++ headers (Debian 13 "trixie"
#                              libonnxruntime-dev, unpacked into cpp/third_party/onnxruntime;
#                              nothing is installed) so the onnxruntime backend compiles
#   ONNXRUNTIME_ROOT, TENSORRT_ROOT   SDK folders (include/, lib/), passed on to CMake
#   CMAKE_ARGS="..."           extra CMake arguments, e.g. -DDMPHN_WITH_AOTI=OFF
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
BUILD_DIR=${BUILD_DIR:-cpp/build}
JOBS=${JOBS:-2}

# Debian packages the build cannot do without (header, package). apt-get update only when
# the plain install fails (fresh images often ship without package lists).
ensure_deb() {
    local header=$1 package=$2
    [ -f "$header" ] && return 0
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "error: $header is missing; install it with: sudo apt-get install $package" >&2
        exit 1
    fi
    echo "build_cpp: apt-get install $package"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$package" >/dev/null 2>&1 || {
        apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$package" >/dev/null
    }
}
ensure_deb /usr/include/nlohmann/json.hpp nlohmann-json3-dev
ensure_deb /usr/include/png.h libpng-dev

# Debian 12 has no ONNX Runtime dev package; trixie's headers (API 21) work with the newer
# library of the pip wheel. apt runs with its own state folder: the system's sources and
# package lists are left alone.
fetch_ort_headers() {
    local dest=cpp/third_party/onnxruntime
    [ -f "$dest/include/onnxruntime/onnxruntime_cxx_api.h" ] && return 0
    # The Debian mirror this machine already uses, asked for the trixie suite.
    local mirror
    mirror=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\/debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
    [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $2 ~ /\/debian$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
    [ -n "$mirror" ] || { echo "build_cpp: no Debian mirror in the apt sources; skipping ONNX Runtime headers" >&2; return 1; }
    local work
    work=$(mktemp -d)
    mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/sources"
    printf 'Types: deb\nURIs: %s\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$mirror" > "$work/sources/trixie.sources"
    local apt_opts=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$work/sources"
                    -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o "APT::Sandbox::User=root")
    echo "build_cpp: fetching libonnxruntime-dev (Debian trixie) headers into $dest"
    apt-get "${apt_opts[@]}" update -q >/dev/null \
        && (cd "$work" && apt-get "${apt_opts[@]}" download libonnxruntime-dev >/dev/null 2>&1) \
        && dpkg -x "$work"/libonnxruntime-dev_*.deb "$work/root" \
        && mkdir -p "$dest/include" && rm -rf "$dest/include/onnxruntime" \
        && cp -r "$work/root/usr/include/onnxruntime" "$dest/include/" \
        && cp "$work/root/usr/share/doc/libonnxruntime-dev/copyright" "$dest/COPYRIGHT.debian"
    local status=$?
    rm -rf "$work"
    return $status
}
if [ "${DMPHN_FETCH_ORT_HEADERS:-0}" = 1 ]; then
    # optional backend: without the headers it is simply not compiled (CMake says so)
    fetch_ort_headers || echo "build_cpp: ONNX Runtime headers unavailable; the onnxruntime backend is not compiled" >&2
fi

TORCH_PREFIX=$("$PYTHON" -c 'import torch; print(torch.utils.cmake_prefix_path)')
cmake_args=(-S cpp -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release
            "-DCMAKE_PREFIX_PATH=$TORCH_PREFIX" "-DDMPHN_PYTHON=$(realpath -s "$PYTHON")")
[ -n "${ONNXRUNTIME_ROOT:-}" ] && cmake_args+=("-DONNXRUNTIME_ROOT=$ONNXRUNTIME_ROOT")
[ -n "${TENSORRT_ROOT:-}" ] && cmake_args+=("-DTENSORRT_ROOT=$TENSORRT_ROOT")
# shellcheck disable=SC2206  # CMAKE_ARGS is a list of words on purpose
[ -n "${CMAKE_ARGS:-}" ] && cmake_args+=(${CMAKE_ARGS})

# Configure once; `cmake --build` re-runs it by itself when a CMakeLists.txt changes.
# Configure again when the arguments change (another Python, new SDK paths).
stamp="$BUILD_DIR/.build_cpp_args"
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ] || [ "$(cat "$stamp" 2>/dev/null)" != "${cmake_args[*]}" ] \
        || { [ "${DMPHN_FETCH_ORT_HEADERS:-0}" = 1 ] && ! grep -q "^ONNXRUNTIME_INCLUDE_DIR:PATH=/" "$BUILD_DIR/CMakeCache.txt"; }; then
    cmake "${cmake_args[@]}"
    echo "${cmake_args[*]}" > "$stamp"
fi
cmake --build "$BUILD_DIR" -j "$JOBS"

realpath "$BUILD_DIR/dmphn_infer"
