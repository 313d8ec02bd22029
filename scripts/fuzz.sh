#!/usr/bin/env bash
# Runs each cargo-fuzz target (fuzz/) for a bounded time and prints a table of what ran.
# Needs nightly Rust and cargo-fuzz (`rustup toolchain install nightly`, `cargo install
# cargo-fuzz`), and what `scripts/setup.sh` installs (the model_files target builds the
# speech crate, whisper.cpp included: cmake, g++, libclang) and python3; on stable,
# `cargo test` runs the proptest targets, which check the same invariants (each target's
# checks live in the test file it names).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]      (default: 60 s, every target)
#
# A failing input is kept in fuzz/artifacts/TARGET/; `cargo +nightly fuzz run TARGET FILE`
# replays it. Keep each one found as a named regression test beside the proptest target.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=60
if [[ "${1:-}" =~ ^[0-9]+$ ]]; then
    seconds="$1"
    shift
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(envelopes s3_keys model_files llm_answers prompt_catalog subtitles)
fi
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz: nightly Rust is not installed; run: rustup toolchain install nightly" >&2
    exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz: cargo-fuzz is not installed; run: cargo install cargo-fuzz" >&2
    exit 2
fi
for tool in python3 sha256sum cmake; do
    if ! command -v "$tool" >/dev/null; then
        echo "fuzz: $tool is missing; run scripts/setup.sh" >&2
        exit 2
    fi
done

# Seeds: the repository's own valid inputs of each kind (libFuzzer mutates from there).
seed() {
    local target=$1
    shift
    mkdir -p "corpus/$target"
    for file in "$@"; do
        [ -f "$file" ] && cp "$file" "corpus/$target/seed-$(sha256sum "$file" | cut -c1-16)"
    done
    return 0
}
mkdir -p corpus/envelopes
python3 - <<'PY'
import json, pathlib
for example in pathlib.Path("../events-schema/examples").glob("*/valid/*.json"):
    envelope = {"version": "0", "id": "seed", "detail-type": example.parent.parent.name,
                "source": "podflow.seed", "time": "2026-01-01T00:00:00Z",
                "detail": json.loads(example.read_text())}
    pathlib.Path(f"corpus/envelopes/seed-{example.parent.parent.name}-{example.stem}").write_text(json.dumps(envelope))
PY
seed envelopes ../crates/podflow-fakes/fixtures/aws/eventbridge/*.json
seed s3_keys ../crates/podflow-fakes/fixtures/aws/s3-notification/*.json \
    ../crates/podflow-fakes/fixtures/aws/s3-eventbridge/*.json
seed prompt_catalog ../prompts/*.toml
mkdir -p corpus/subtitles corpus/llm_answers corpus/model_files
printf '1\n00:00:00,000 --> 00:00:02,500\nHello there.\n\n2\n00:00:02,500 --> 00:00:05,000\n[Speaker 2] Hi.\n' \
    > corpus/subtitles/seed-srt
printf 'WEBVTT\n\n00:00.000 --> 00:02.500\n<v Ana>Hello &amp; welcome</v>\n' > corpus/subtitles/seed-vtt
python3 - <<'PY'
import struct, pathlib
answers = {
    "chapters": '```json\n{"chapters": [{"startTime": 0, "title": "Welcome"}, {"startTime": "00:01:20", "title": "Retries"}]}\n```',
    "clips": '{"clips": [{"start": 10, "end": 30, "hook": "One failed prompt"}]}',
    "titles": "1. Retries Without Tears\n2. Never Twice",
}
for name, text in answers.items():
    pathlib.Path(f"corpus/llm_answers/seed-{name}").write_bytes(struct.pack("<d", 600.0) + text.encode())
PY

cargo +nightly fuzz build
table="$(mktemp)"
printf '\n| target | seconds | runs | corpus files | result |\n|---|---|---|---|---|\n' >"$table"
status=0
for target in "${targets[@]}"; do
    log="$(mktemp)"
    # Memory: libFuzzer stops at 2 GiB resident or any single allocation of 256 MiB, so
    # an allocation far beyond an input's size (inputs are at most 64 KiB) is a finding.
    if cargo +nightly fuzz run "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -malloc_limit_mb=256 \
        -print_final_stats=1 >"$log" 2>&1; then
        result=ok
    else
        result="FAILED (fuzz/artifacts/$target/)"
        status=1
        tail -n 30 "$log" >&2
    fi
    runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')"
    files="$(find "corpus/$target" -type f | wc -l)"
    printf '| %s | %s | %s | %s | %s |\n' "$target" "$seconds" "$runs" "$files" "$result" \
        >>"$table"
    rm -f "$log"
done
cat "$table"
rm -f "$table"
exit "$status"
