#!/usr/bin/env bash
# Semantic catalogue search on real text: ml-latest-small movies joined to TMDB 5000 overviews by
# tmdbId (the shared data, read in place), served by the release binary over HTTP.
#   1. a fresh data directory with tenants `full` (title, genres, user tags, TMDB overview) and
#      `bare` (title, genres, user tags), a secret key each, `marquee serve` on a free port;
#   2. all 9,742 movies posted to each tenant in turn, timed until `x-marquee-indexed-items`
#      reads n/n (background indexing rate, items/s);
#   3. natural-language questions about well-known films (WALL·E: goal top 3), rank and top 5;
#   4. recall@10 of (a) TMDB overview -> title on `bare` (the query text is not in the index) and
#      (b) TMDB tagline -> film on `full`, with p50/p99 latency of each search over HTTP.
# Prints a Markdown table and writes it as the "Semantic catalogue search" section of
# BENCHMARKS.md (replacing an earlier run's section); per-query details go to
# bench/.work/semantic_search/.
# Usage: bench/semantic_search.sh            (from anywhere; needs cargo and python3)
# Env: MARQUEE_MODELS_DIR (else $XDG_DATA_HOME/marquee/models or ~/.local/share/marquee/models;
#      all-minilm-l6-v2 is pulled there if missing), MARQUEE_SHARED_DATA (default ../shared/data),
#      SAMPLE (queries per protocol, random with seed 42; default 0 = every joined movie),
#      RECORD=0 to leave BENCHMARKS.md alone.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${MARQUEE_SHARED_DATA:-../shared/data}
MODELS=${MARQUEE_MODELS_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/marquee/models}
OUT=bench/.work/semantic_search
mkdir -p "$OUT"

cargo build --release --quiet -p marquee-cli
B=target/release/marquee
if [[ ! -f $MODELS/all-minilm-l6-v2/model.safetensors ]]; then
    "$B" models pull all-minilm-l6-v2 --models-dir "$MODELS"
fi

WORK=$(mktemp -d)
SERVER=
cleanup() {
    if [[ -n $SERVER ]]; then
        kill -TERM "$SERVER" 2>/dev/null || true
        wait "$SERVER" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

D=$WORK/data
"$B" tenants create full --data-dir "$D" >/dev/null
"$B" tenants create bare --data-dir "$D" >/dev/null
KEY_FULL=$("$B" keys create --tenant full --kind secret --data-dir "$D")
KEY_BARE=$("$B" keys create --tenant bare --kind secret --data-dir "$D")

# Port 0: the server picks a free port and prints it.
"$B" serve --data-dir "$D" --listen 127.0.0.1:0 --models-dir "$MODELS" \
    >"$WORK/serve.out" 2>"$OUT/serve.log" &
SERVER=$!
BASE=
for _ in $(seq 600); do
    BASE=$(sed -n 's/^Marquee listening on \(http:[^ ]*\).*/\1/p' "$WORK/serve.out")
    [[ -n $BASE ]] && break
    kill -0 "$SERVER" 2>/dev/null || { cat "$OUT/serve.log" >&2; exit 1; }
    sleep 0.1
done
[[ -n $BASE ]] || { echo "server did not start" >&2; exit 1; }
echo "server at $BASE (pid $SERVER), log in $OUT/serve.log" >&2

machine="$(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p' | head -n 1)), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM"
cmd=bench/semantic_search.sh
[[ ${SAMPLE:-0} != 0 ]] && cmd="SAMPLE=$SAMPLE $cmd"
record=()
[[ ${RECORD:-1} != 0 ]] && record=(--record BENCHMARKS.md)
python3 bench/semantic_search.py --base "$BASE" --key-full "$KEY_FULL" --key-bare "$KEY_BARE" \
    --data "$DATA" --out "$OUT" --sample "${SAMPLE:-0}" --date "$(date)" --machine "$machine" \
    --command "$cmd" "${record[@]}"
