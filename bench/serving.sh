#!/usr/bin/env bash
# Serving and ingestion under load, side by side with the server's own floor (issue 8).
#   bench/serving.sh [recommend] [ingest]        (default: both; needs wrk and ../shared/data)
# Environment: DURATION (s per recommend run, default 15), INGEST_DURATION (default 60),
# CONNECTIONS (default 16), THREADS (wrk threads, default 1), MARQUEE_SHARED_DATA,
# LEDGER_COMMIT_BEFORE_ANSWER=1 (each billable answer waits for its usage row's commit; see the
# README's Metering: the default writes rows behind the answer).
#
# Builds the release binary, imports ML-100K and ml-latest-small into a fresh data directory,
# trains both tenants, creates a secret key per tenant (so every recommend call is
# authenticated, rate-limit checked and metered into the usage ledger), starts `marquee serve`
# and loads it from wrk on loopback. /healthz, measured in the same run, is the floor: what the
# server answers per second when it does nothing. Results: one markdown row per run, and the
# raw JSON lines in $OUT (default bench/results/serving-DATE.jsonl).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${MARQUEE_SHARED_DATA:-../shared/data}
DURATION=${DURATION:-15}
INGEST_DURATION=${INGEST_DURATION:-60}
CONNECTIONS=${CONNECTIONS:-16}
THREADS=${THREADS:-1}
WHAT=${*:-recommend ingest}
command -v wrk >/dev/null || { echo "bench/serving.sh: needs wrk (apt-get install wrk)" >&2; exit 1; }

[ -n "${SKIP_BUILD:-}" ] || cargo build --release --locked -q -p marquee-cli
B=$PWD/target/release/marquee
WORK=$(mktemp -d)
mkdir -p bench/results
OUT=${OUT:-bench/results/serving-$(date +%Y%m%d-%H%M%S).jsonl}
SERVER_PID=
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
# A throwaway master key: the benchmark never touches ~/.config/marquee.
MARQUEE_MASTER_KEY=$(head -c 32 /dev/urandom | base64)
export MARQUEE_MASTER_KEY
export MARQUEE_DATA_DIR=$WORK/db

echo "bench/serving.sh: importing and training (ML-100K, ml-latest-small)" >&2
"$B" import movielens "$DATA/ml-100k" --tenant ml100k >/dev/null
"$B" import movielens "$DATA/ml-latest-small" --tenant mlsmall >/dev/null
"$B" train --tenant ml100k >/dev/null
"$B" train --tenant mlsmall >/dev/null
KEY_100K=$("$B" keys create --tenant ml100k --kind secret --name bench)
KEY_SMALL=$("$B" keys create --tenant mlsmall --kind secret --name bench)

# Id lists for wrk to draw from.
cut -f1 "$DATA/ml-100k/u.data" | sort -un >"$WORK/users-100k.txt"
cut -d'|' -f1 "$DATA/ml-100k/u.item" >"$WORK/items-100k.txt"
tail -n +2 "$DATA/ml-latest-small/ratings.csv" | cut -d, -f1 | sort -un >"$WORK/users-small.txt"
tail -n +2 "$DATA/ml-latest-small/ratings.csv" | cut -d, -f2 | sort -un >"$WORK/items-small.txt"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
CONFIG_ARGS=()
if [ -n "${LEDGER_COMMIT_BEFORE_ANSWER:-}" ]; then
    printf '[service]\nledger_commit_before_answer = true\n' >"$WORK/marquee.toml"
    CONFIG_ARGS=(--config "$WORK/marquee.toml")
fi
"$B" serve "${CONFIG_ARGS[@]}" --no-models --listen "127.0.0.1:$PORT" --log-format json >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
until curl -sf "$URL/readyz" >/dev/null; do
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
    sleep 0.2
done
rss_mib() { echo $(( $(awk '/VmRSS/ {print $2}' "/proc/$SERVER_PID/status") / 1024 )); }
echo "bench/serving.sh: server ready on $URL, RSS $(rss_mib) MiB; wrk -t$THREADS -c$CONNECTIONS" >&2

# run NAME PATH USERS ITEMS KEY [DURATION] [SCRIPT]: one wrk run; prints its RESULT json.
run() {
    local name=$1 path=$2 users=$3 items=$4 key=$5 duration=${6:-$DURATION} script=${7:-random_get.lua}
    local line
    line=$(WRK_PATH=$path WRK_USERS=$users WRK_ITEMS=$items WRK_KEY=$key WRK_BATCH=${WRK_BATCH:-1000} \
        wrk -t"$THREADS" -c"$CONNECTIONS" -d"${duration}s" --timeout 10s -s "bench/wrk/$script" "$URL" \
        | grep '^RESULT ' | cut -d' ' -f2-)
    line=$(echo "$line" | python3 -c 'import json,sys; d=json.load(sys.stdin); d["name"]=sys.argv[1]; print(json.dumps(d))' "$name")
    echo "$line" >>"$OUT"
    echo "$line"
}

# Markdown rows: ratio against the /healthz floor of the same run.
table() {
    python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
floor = [r["rps"] for r in rows if r["name"].startswith("healthz")]
floor = sum(floor) / len(floor) if floor else None
print("| route | requests/s | × /healthz | p50 ms | p99 ms | p99.9 ms | errors |")
print("|---|---|---|---|---|---|---|")
for r in rows:
    rps = r.get("events_per_s")
    ratio = f"{r['rps'] / floor:.2f}" if floor and "events_per_s" not in r else "–"
    shown = f"{r['rps']:,.0f}" + (f" ({r['events_per_s']:,.0f} events/s)" if rps else "")
    print(f"| {r['name']} | {shown} | {ratio} | {r['p50_us']/1000:.2f} | {r['p99_us']/1000:.2f} | {r['p999_us']/1000:.2f} | {r['errors']} |")
PY
}

U100=$WORK/users-100k.txt I100=$WORK/items-100k.txt USM=$WORK/users-small.txt ISM=$WORK/items-small.txt
if [[ " $WHAT " == *" recommend "* ]]; then
    run "healthz" "/healthz" "" "" "" >/dev/null
    run "recommend ML-100K /v1/recommend/{user}" "/v1/recommend/{user}?n=10" "$U100" "" "$KEY_100K" >/dev/null
    run "recommend ml-latest-small /v1/recommend/{user}" "/v1/recommend/{user}?n=10" "$USM" "" "$KEY_SMALL" >/dev/null
    run "in context ML-100K /recommend/{user}/{item}" "/recommend/{user}/{item}?n=10" "$U100" "$I100" "$KEY_100K" >/dev/null
    run "similar ML-100K /v1/items/{item}/similar" "/v1/items/{item}/similar?n=10" "" "$I100" "$KEY_100K" >/dev/null
    run "popular ML-100K /v1/popular" "/v1/popular?n=10" "" "" "$KEY_100K" >/dev/null
    run "healthz (again)" "/healthz" "" "" "" >/dev/null
    echo "RSS after the recommend runs: $(rss_mib) MiB" >&2
fi
if [[ " $WHAT " == *" ingest "* ]]; then
    # Durable: the answer comes after the transaction's commit (SQLite WAL, synchronous=FULL).
    run "ingest ML-100K POST /v1/feedback ×1000" "" "$U100" "$I100" "$KEY_100K" "$INGEST_DURATION" feedback_batch.lua >/dev/null
    # The same ingest with recommend load beside it (two wrk processes at once).
    WRK_PATH="/v1/recommend/{user}?n=10" WRK_USERS=$U100 WRK_KEY=$KEY_100K \
        wrk -t1 -c"$CONNECTIONS" -d"${INGEST_DURATION}s" --timeout 10s -s bench/wrk/random_get.lua "$URL" \
        | grep '^RESULT ' | cut -d' ' -f2- \
        | python3 -c 'import json,sys; d=json.load(sys.stdin); d["name"]="recommend during ingest"; print(json.dumps(d))' >"$WORK/side.json" &
    SIDE=$!
    run "ingest with recommend load beside" "" "$U100" "$I100" "$KEY_100K" "$INGEST_DURATION" feedback_batch.lua >/dev/null
    wait "$SIDE"
    cat "$WORK/side.json" >>"$OUT"
    echo "RSS after ingest: $(rss_mib) MiB" >&2
fi
table
echo "raw results: $OUT" >&2
