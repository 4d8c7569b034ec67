#!/usr/bin/env bash
# The one test command (README, CI): formatting, lints, then every test suite of the workspace.
# Suites that read ../shared (the CrowdSec hub conformance data) print "skipped: ..." when it is
# absent instead of passing silently.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    # Machines of this project ship rustup's toolchain; a bare Debian gets its packaged one.
    if [ -f "$HOME/.cargo/env" ]; then
        # shellcheck disable=SC1091
        . "$HOME/.cargo/env"
    else
        apt-get update -q && apt-get install -y -q cargo rustc rustfmt
    fi
fi

if [ ! -d ../shared/compat/crowdsec-hub ]; then
    echo "skipped: CrowdSec hub conformance suites (../shared/compat/crowdsec-hub not found next to this checkout)"
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test"
cargo test --workspace --locked 2>&1 | tee target/test-output.txt
# A summary line the CI reader understands, summed over every test binary.
awk '/^test result:/ { p += $4; f += $6; s += $8 } END { printf "%d passed, %d failed, %d skipped\n", p, f, s }' target/test-output.txt
