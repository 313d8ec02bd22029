#!/usr/bin/env bash
# Generates a two-voice sample episode (espeak-ng speech → m4a with ffmpeg).
# Usage: scripts/make-sample-episode.sh OUT.m4a
set -euo pipefail
out=${1:-sample-episode.m4a}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
lines=(
  "en-us|Welcome back to the show. Today we are talking about building reliable pipelines for podcasts."
  "en-us+Annie|Thanks for having me. I have been running a weekly show for three years, and the tooling still hurts."
  "en-us|What hurts the most? Is it the transcription, or everything that comes after it?"
  "en-us+Annie|Mostly the retries. One failed prompt and nothing comes out, so we run the whole thing again."
  "en-us|That is exactly what we want to fix. Every step should run on its own and retry when something goes wrong."
  "en-us+Annie|And the expensive work, like transcription, should never be done twice."
)
i=0
: > "$tmp/list.txt"
for line in "${lines[@]}"; do
  voice=${line%%|*}; text=${line#*|}
  espeak-ng -v "$voice" -s 155 -w "$tmp/$i.wav" "$text"
  ffmpeg -loglevel error -y -f lavfi -t 0.6 -i anullsrc=r=22050:cl=mono "$tmp/gap$i.wav"
  printf "file '%s'\nfile '%s'\n" "$tmp/$i.wav" "$tmp/gap$i.wav" >> "$tmp/list.txt"
  i=$((i+1))
done
ffmpeg -loglevel error -y -f concat -safe 0 -i "$tmp/list.txt" -c:a aac -b:a 96k "$out"
echo "$out"
