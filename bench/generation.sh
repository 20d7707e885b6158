#!/usr/bin/env bash
# Text-generation speed of the chat model against the machine's memory-bandwidth bound, in one
# run: read bandwidth (measured here), greedy decode tokens/s, time to first token for a
# 200-token prompt, two generations at once, and whether greedy output repeats exactly; for
# Marquee's decoder (crates/models/src/llama.rs) and candle's quantized_llama on the same file.
#
#   bench/generation.sh            # uses $MARQUEE_MODELS_DIR or the default models directory
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q -p marquee-cli -p marquee-models --example gen_bench
# The models directory: $MARQUEE_MODELS_DIR, else Marquee's default.
target/release/marquee models pull smollm2-135m-instruct >&2
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(date -u +%Y-%m-%d)"
target/release/examples/gen_bench
