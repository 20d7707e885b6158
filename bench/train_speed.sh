#!/usr/bin/env bash
# Training-speed comparison, one run, same machine, same splits:
#   numpy EASE (float64 inverse of XᵀX + λI, as the ANCHORS.md figures) vs Marquee EASE,
#   `implicit` ALS (64 factors, 15 iterations, CPU) vs Marquee iALS,
# on ML-100K (all ratings positive), ml-latest-small (ratings >= 4) and Last.fm 2K, protocol B.
# Usage: bench/train_speed.sh [datasets...]   (from anywhere; needs python3 and cargo)
set -euo pipefail
cd "$(dirname "$0")/.."
datasets=("${@:-ml-100k ml-latest-small lastfm}")
read -r -a datasets <<<"${datasets[*]}"

if [[ ! -x bench/.venv/bin/python ]]; then
    python3 -m venv bench/.venv
fi
bench/.venv/bin/pip install --quiet 'numpy' 'scipy' 'implicit>=0.7,<0.8'

cargo build --release --quiet -p marquee-recsys --example train_speed
# Same thread count on both sides (OpenBLAS and implicit use all cores by default, as does rayon).
export OPENBLAS_NUM_THREADS=$(nproc) OMP_NUM_THREADS=$(nproc)

declare -A lambda=([ml-100k]=500 [ml-latest-small]=200 [lastfm]=50)
results=()
for d in "${datasets[@]}"; do
    work=bench/.work/$d
    echo "== $d" >&2
    rust=$(target/release/examples/train_speed "$d" "$work" "${lambda[$d]}")
    py=$(bench/.venv/bin/python bench/train_speed.py "$work" "${lambda[$d]}")
    results+=("{\"rust\": $rust, \"python\": $py}")
done

printf '%s\n' "${results[@]}" | bench/.venv/bin/python bench/table.py
