#!/usr/bin/env bash
# The one test command: formatting, lints, then every test of the workspace — unit, loopback, fuzzing
# and the interop tests against real FRR, BIRD and GoBGP in network namespaces.
#
# Interop tests need root and the router packages. Without them they print a loud "SKIPPED" and pass,
# unless FERROLB_REQUIRE_INTEROP=1 (as in CI), where a missing prerequisite fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace -- --test-threads="${FERROLB_TEST_THREADS:-2}"
