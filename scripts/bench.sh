#!/usr/bin/env bash
# BGP benchmark: ferrolb vs GoBGP feeding the same FRR. As root. Arguments go to bgp-bench (--routes N).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p ferrolb-interop-tests --bins
exec target/release/bgp-bench "$@"
