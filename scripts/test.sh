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
# DuckDB reads the Parquet lake `replay --lake` writes, as a user's own engine would.
if ! "$PYTHON" -c "import duckdb" >/dev/null 2>&1; then
    "$PYTHON" -m pip install --quiet --disable-pip-version-check 'duckdb>=1.1,<3'
fi
# Spark runs the Athena DDL `lake ddl` prints in a Hive metastore and reads the lake through it
# (it needs Java 17 or later, which the build machines have).
if ! "$PYTHON" -c "import pyspark" >/dev/null 2>&1; then
    "$PYTHON" -m pip install --quiet --disable-pip-version-check 'pyspark>=4,<5'
fi
# The deployment template is checked with CloudFormation's own linter.
if ! "$PYTHON" -c "import cfnlint" >/dev/null 2>&1; then
    "$PYTHON" -m pip install --quiet --disable-pip-version-check 'cfn-lint>=1,<2'
fi
"$PYTHON" -c "import sys; from cfnlint.runner import main; sys.argv = [\"cfn-lint\", \"deploy/cloudformation.yaml\"]; sys.exit(main())"
"$PYTHON" -m json.tool deploy/iam-policy.json >/dev/null

cargo fmt --all -- --check
# One build for lints, tests, benchmarks and the binary, so the dependencies are compiled once:
# clippy's lints run while trailhound's own targets are compiled for the tests, with
# clippy-driver as the workspace's compiler wrapper (which is how `cargo clippy` works), instead
# of in a check-only pass that would compile every dependency a second time. The lints and the
# failure on any warning are those of `cargo clippy --release --all-targets -- -D warnings`.
CLIPPY_DRIVER="$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver || true)"
if [ -n "$CLIPPY_DRIVER" ]; then
    export RUSTC_WORKSPACE_WRAPPER="$CLIPPY_DRIVER"
    export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
else
    cargo clippy --release --all-targets -- -D warnings
fi
cargo test --release --all-targets
# The detection pack's own tests, as a user runs them, with the binary the tests just built.
"${CARGO_TARGET_DIR:-target}/release/trailhound" rules test
