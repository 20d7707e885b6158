#!/usr/bin/env bash
# Import speed and start-up time of the release build, on the shared datasets.
#   bench/import_and_start.sh            (expects ../shared/data; builds target/release/marquee)
# Prints wall time and peak RSS of each import, then the time from `marquee serve --demo` to a
# ready /readyz on a fresh data directory (import + first training) and on a restart (the model
# snapshot is loaded instead of retraining).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${MARQUEE_SHARED_DATA:-../shared/data}
cargo build --release -q -p marquee-cli
B=target/release/marquee
WORK=$(mktemp -d)
trap 'pkill -f "marquee serve --demo --data-dir $WORK" 2>/dev/null || true; rm -rf "$WORK"' EXIT

echo "| import | events | wall s | peak RSS MiB |"
echo "|---|---|---|---|"
run_import() {
    local name=$1; shift
    local out
    out=$( { /usr/bin/time -f "%e %M" "$B" "$@" --data-dir "$WORK/imports" 2>&1 >/dev/null; } | tail -n 2)
    local events wall rss
    events=$(echo "$out" | head -n 1 | grep -o '[0-9]* feedback events' | cut -d' ' -f1)
    read -r wall rss <<<"$(echo "$out" | tail -n 1)"
    echo "| $name | $events | $wall | $((rss / 1024)) |"
}
run_import ml-100k import movielens "$DATA/ml-100k" --tenant ml100k
run_import ml-latest-small import movielens "$DATA/ml-latest-small" --tenant mlsmall
run_import lastfm-2k import interactions "$DATA/hetrec2011-lastfm-2k/user_artists.dat" --tenant lastfm --type play

ready_after() {
    local port=$1
    local start end
    start=$(date +%s.%N)
    "$B" serve --demo --data-dir "$WORK/demo" --listen "127.0.0.1:$port" >/dev/null 2>&1 &
    local pid=$!
    until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; do sleep 0.1; done
    end=$(date +%s.%N)
    echo "$end - $start" | bc
    # Let the background tuning finish so the next start has the tuned model's snapshot.
    sleep "${2:-0}"
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
}
echo
echo "| demo start | seconds to ready |"
echo "|---|---|"
echo "| fresh data dir (import + first model) | $(ready_after 18555 30) |"
echo "| restart (model snapshot) | $(ready_after 18556 0) |"
