#!/usr/bin/env bash
# Installs what the tests need, then runs every test: unit, integration, the CLI end to end,
# each benchmark once (as a test) and every detection's own tests. Also checks formatting and
# lints.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "scripts/test.sh: cargo not found; install Rust from https://rustup.rs" >&2
    exit 1
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true
# A real AWS-protocol server (DynamoDB, S3, SQS) for the integration tests: moto's server mode.
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import moto.server, flask' >/dev/null 2>&1; then
    "$PYTHON" -m pip install --quiet --disable-pip-version-check 'moto[server]>=5.1,<6'
fi
export PYTHON
# The deployment template is checked with CloudFormation's own linter.
if ! "$PYTHON" -c "import cfnlint" >/dev/null 2>&1; then
    "$PYTHON" -m pip install --quiet --disable-pip-version-check 'cfn-lint>=1,<2'
fi
"$PYTHON" -c "import sys; from cfnlint.runner import main; sys.argv = [\"cfn-lint\", \"deploy/cloudformation.yaml\"]; sys.exit(main())"
"$PYTHON" -m json.tool deploy/iam-policy.json >/dev/null

# One build profile for tests, benchmarks and the binary: dependencies are compiled once.
cargo fmt --all -- --check
cargo clippy --release --all-targets -- -D warnings
cargo test --release --all-targets
# The detection pack's own tests, as a user runs them, with the binary the tests just built.
"${CARGO_TARGET_DIR:-target}/release/trailhound" rules test
