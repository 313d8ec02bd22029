#!/usr/bin/env bash
# The speech engine on arm64, checked from an x86-64 machine: cross-builds podflow-speech's
# tests for aarch64 against the arm64 `ctranslate2` wheel (the one `pip install` takes on
# Graviton or on Linux on Apple Silicon) and runs them under qemu's user-mode emulation,
# the real model included. Only the speech engine carries CPU-specific code; the rest of
# podflow is plain Rust. Emulation is slow: the figures it prints say nothing of arm64's
# speed.
# Installs g++-aarch64-linux-gnu and qemu-user (Debian), the aarch64 Rust standard library
# (rustup) and the arm64 wheel (into podflow's cache, beside the venv).
# Usage: scripts/arm64-check.sh [TEST-NAME-FILTER]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
missing=()
for p in g++-aarch64-linux-gnu qemu-user; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "arm64-check: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
target=aarch64-unknown-linux-gnu
rustup target list --installed | grep -qx "$target" || rustup target add "$target"

cache="${PODFLOW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/podflow}"
py="$cache/venv/bin/python"
wheel_dir="$cache/arm64-wheel"
libs="$wheel_dir/ctranslate2.libs"
if ! ls "$libs"/libctranslate2-*.so.* >/dev/null 2>&1; then
  echo "arm64-check: fetching the arm64 ctranslate2 wheel into $wheel_dir" >&2
  mkdir -p "$wheel_dir"
  version="$("$py" -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')"
  # The same pin as scripts/setup.sh: ct2rs compiles its bridge against 4.8.4's headers.
  "$py" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --platform manylinux_2_28_aarch64 --python-version "$version" \
    -d "$wheel_dir" "ctranslate2==4.8.4"
  "$py" -m zipfile -e "$wheel_dir"/ctranslate2-4.8.4-*.whl "$wheel_dir"
fi

export PODFLOW_CTRANSLATE2_LIB_DIR="$libs"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
export BINDGEN_EXTRA_CLANG_ARGS_aarch64_unknown_linux_gnu="--sysroot=/usr/aarch64-linux-gnu"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
# Optimised: the tests' own Rust (the mel front end, voice prints) is emulated too.
cargo test --release -p podflow-speech --target "$target" -- --test-threads 1 "$@"
