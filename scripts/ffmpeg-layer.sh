#!/usr/bin/env bash
# Builds a Lambda layer zip with a static ffmpeg (bin/ffmpeg) for the publisher, which cuts
# clips and the trailer with it. The binary comes from the PyPI wheel imageio-ffmpeg (a
# static build with libmp3lame), for the template's architecture (arm64) unless told:
#   scripts/ffmpeg-layer.sh [arm64|x86_64] [OUT.zip]
# Then publish it and pass its ARN to the stack:
#   aws lambda publish-layer-version --layer-name podflow-ffmpeg \
#     --zip-file fileb://target/ffmpeg-layer.zip --compatible-architectures arm64
#   sam deploy --parameter-overrides FfmpegLayerArn=arn:aws:lambda:…:layer:podflow-ffmpeg:1
set -euo pipefail

arch="${1:-arm64}"
out="${2:-target/ffmpeg-layer.zip}"
case "$arch" in
  arm64) platform=manylinux2014_aarch64 ;;
  x86_64) platform=manylinux2014_x86_64 ;;
  *) echo "ffmpeg-layer: architecture must be arm64 or x86_64, not '$arch'" >&2; exit 2 ;;
esac
if ! command -v unzip >/dev/null || ! command -v zip >/dev/null; then
  echo "ffmpeg-layer: needs zip and unzip (Debian: apt-get install zip unzip)" >&2
  exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m pip download -q --no-deps --only-binary=:all: --platform "$platform" \
  --dest "$work" 'imageio-ffmpeg>=0.5,<1'
unzip -q -o "$work"/imageio_ffmpeg-*.whl 'imageio_ffmpeg/binaries/ffmpeg-*' -d "$work"
mkdir -p "$work/layer/bin"
mv "$work"/imageio_ffmpeg/binaries/ffmpeg-* "$work/layer/bin/ffmpeg"
chmod 755 "$work/layer/bin/ffmpeg"
mkdir -p "$(dirname "$out")"
out="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"
rm -f "$out"
(cd "$work/layer" && zip -q -r "$out" bin)
echo "ffmpeg-layer: wrote $out ($(du -h "$out" | cut -f1), $arch)" >&2
