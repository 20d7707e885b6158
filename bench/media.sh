#!/usr/bin/env bash
# Speech, transcription and vision on the real weights (issue 5's figures): real-time factor of
# speech synthesis, its word error rate when Whisper hears it back (20 varied sentences),
# transcription of the shared samples, image latency. Release build; models from
# `marquee models pull` (MARQUEE_MODELS_DIR or the default directory).
set -euo pipefail
cd "$(dirname "$0")/.."
models="${MARQUEE_MODELS_DIR:-}"
if [ -z "$models" ]; then
  models="${XDG_DATA_HOME:-$HOME/.local/share}/marquee/models"
fi
cargo run --release --locked --quiet -p marquee-cli -- models pull --models-dir "$models" hibari whisper-tiny-en efficientnet-lite0
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
cargo run --release --locked --quiet -p marquee-models --example media_bench -- "$models" ../shared/samples
