#!/usr/bin/env bash
# The whole test suite: setup, formatting, template lints, clippy, then every test in the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests
# The linters and the AWS emulator live in podflow's Python environment (scripts/setup.sh).
export PATH="${PODFLOW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/podflow}/venv/bin:$PATH"
cargo fmt --all -- --check
# The SAM template: cfn-lint, then SAM's own validation (offline, no credentials used).
cfn-lint infra/template.yaml
SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}" sam validate --lint --config-file "$PWD/infra/samconfig.toml"
# The shell scripts, and the deploy smoke test as a dry run (it needs an AWS account otherwise).
shellcheck scripts/*.sh infra/smoke.sh .ci/run
infra/smoke.sh --stack podflow-smoke --dry-run 2>/dev/null
cargo clippy --workspace --all-targets -- -D warnings
# The CLI without CTranslate2 (whisper.cpp only, for builds without the wheel): keep it compiling.
cargo clippy -p podflow-cli --no-default-features --all-targets -- -D warnings
cargo test --workspace
