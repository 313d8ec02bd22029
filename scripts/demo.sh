#!/usr/bin/env bash
# Installs what is missing, generates a two-voice sample episode and runs `podflow run` on it.
# Without an LLM (PODFLOW_LLM_URL, or one answering at Ollama's default address) podflow's
# extractive engine writes the show notes, chapters, clips and the rest from the transcript.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
sample="${TMPDIR:-/tmp}/podflow-sample-episode.m4a"
scripts/make-sample-episode.sh "$sample" >/dev/null
cargo build -q -p podflow-cli
target="${CARGO_TARGET_DIR:-target}"
exec "$target/debug/podflow" run "$sample" "$@"
