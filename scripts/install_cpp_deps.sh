#!/usr/bin/env bash
# Install what the C++ part (cpp/, scripts/build_cpp.sh) needs from outside PyPI: an explicit
# install step, run by scripts/setup.sh, so that building and testing never run apt by surprise.
#   Debian packages: nlohmann-json3-dev, libpng-dev
#   ONNX Runtime C++ headers (ORT_HEADERS=1, the default): Debian 12 has no ONNX Runtime dev
#     package, so Debian 13 "trixie"'s libonnxruntime-dev is downloaded with a throw-away apt
#     state and only its headers are unpacked into cpp/third_party/onnxruntime (nothing is
#     installed; the headers of API 21 work with the newer library of the pip wheel).
# Needs root and apt-get; elsewhere it prints what to install and exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."
ORT_HEADERS=${ORT_HEADERS:-1}

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install_cpp_deps: needs root and apt-get; install nlohmann-json3-dev libpng-dev yourself" \
         "and pass ONNXRUNTIME_ROOT to scripts/build_cpp.sh for the ONNX Runtime backend" >&2
    exit 1
fi

# Debian packages (header, package). apt-get update only when the plain install fails (fresh
# images often ship without package lists).
ensure_deb() {
    local header=$1 package=$2
    [ -f "$header" ] && return 0
    echo "install_cpp_deps: apt-get install $package"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$package" >/dev/null 2>&1 || {
        apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$package" >/dev/null
    }
}
ensure_deb /usr/include/nlohmann/json.hpp nlohmann-json3-dev
ensure_deb /usr/include/png.h libpng-dev

# apt runs with its own state folder: the system's sources and package lists are left alone.
fetch_ort_headers() {
    local dest=cpp/third_party/onnxruntime
    [ -f "$dest/include/onnxruntime/onnxruntime_cxx_api.h" ] && return 0
    # The Debian mirror this machine already uses, asked for the trixie suite.
    local mirror
    mirror=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\/debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
    [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $2 ~ /\/debian$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
    [ -n "$mirror" ] || { echo "install_cpp_deps: no Debian mirror in the apt sources; skipping ONNX Runtime headers" >&2; return 1; }
    local work
    work=$(mktemp -d)
    mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/sources"
    printf 'Types: deb\nURIs: %s\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$mirror" > "$work/sources/trixie.sources"
    local apt_opts=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$work/sources"
                    -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o "APT::Sandbox::User=root")
    echo "install_cpp_deps: fetching libonnxruntime-dev (Debian trixie) headers into $dest"
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
if [ "$ORT_HEADERS" = 1 ]; then
    # optional backend: without the headers it is simply not compiled (CMake says so)
    fetch_ort_headers || echo "install_cpp_deps: ONNX Runtime headers unavailable; the onnxruntime backend is not compiled" >&2
fi
