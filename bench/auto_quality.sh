#!/usr/bin/env bash
# `auto_select` quality per dataset over outer split seeds (ANCHORS.md protocols; auto_select
# seed 7): prints one line per (dataset, seed) with the test nDCG@10, the auto_select time and
# the chosen config, then mean ± spread (min–max) per dataset.
# Usage: bench/auto_quality.sh [datasets...]   (default: ml-100k ml-latest-small lastfm;
# SEEDS env, default "1 2 3 4 42")
set -euo pipefail
cd "$(dirname "$0")/.."
datasets=("${@:-ml-100k ml-latest-small lastfm}")
read -r -a datasets <<<"${datasets[*]}"
cargo build --release --quiet -p marquee-recsys --example anchors
for d in "${datasets[@]}"; do
    for s in ${SEEDS:-1 2 3 4 42}; do
        out=$(SEED=$s target/release/examples/anchors "$d")
        ndcg=$(grep -o '"ndcg":[0-9.]*' <<<"$out" | tail -1 | cut -d: -f2)
        secs=$(grep -o '^auto_select ([0-9.]*s)' <<<"$out" | grep -o '[0-9.]*')
        best=$(tail -1 <<<"$out" | cut -d' ' -f1)
        echo "$d seed $s ndcg $ndcg auto_select ${secs}s $best"
    done
done | tee /dev/stderr | awk '{n[$1]++; v=$5; s[$1]+=v; if(!($1 in lo)||v<lo[$1])lo[$1]=v; if(!($1 in hi)||v>hi[$1])hi[$1]=v}
    END {for (d in n) printf "%s: mean %.4f over %d seeds, min %.4f, max %.4f\n", d, s[d]/n[d], n[d], lo[d], hi[d]}'
