#!/usr/bin/env bash
# Scale check (issue requirement): synthetic 1M users × 100k items × 20M interactions, Zipf-like
# item popularity (see crates/recsys/examples/scale.rs), release build, wall time and peak RSS
# from /usr/bin/time -v. Modes: ials (iALS 64 factors, ITERATIONS env, default 15, whole train()),
# default (AlgorithmConfig::default_for), auto (auto_select_report), gen (data only).
# Usage: bench/scale.sh [modes...]   (default: gen ials auto)
set -euo pipefail
cd "$(dirname "$0")/.."
modes=("${@:-gen ials auto}")
read -r -a modes <<<"${modes[*]}"
cargo build --release --quiet -p marquee-recsys --example scale
for m in "${modes[@]}"; do
    echo "== $m"
    /usr/bin/time -v target/release/examples/scale "$m" 2>&1 |
        grep -vE '^\s+(Average|Page size|Swaps|File system|Socket|Signals|Exit|Major|Minor|Voluntary|Involuntary|Command)'
done
