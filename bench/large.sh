#!/usr/bin/env bash
# A large catalogue in the server (issue 8): synthetic users × 100k items with power-law
# popularity (crates/recsys/examples/scale.rs, mode `tsv`), imported through `marquee import
# interactions`, trained as iALS with 64 factors, then served and loaded from wrk.
#   bench/large.sh            (needs wrk; about 15 minutes on 2 cores)
# Environment: RUNS (default "1000000:2000000 1000000:6000000 250000:2000000": users:events per
# data directory; the first two differ in events only and the first and last in users only, so
# memory per event and per user can be told apart), ITEMS (100000), ITERATIONS (iALS
# iterations, default 5: memory and serving do not depend on it), DURATION (s per wrk run,
# default 15), CONNECTIONS (16).
#
# Prints, per data directory: import and training time, the server's RSS once ready (and that of
# a server with one empty tenant, the floor), then recommend requests/s and latency for users
# drawn at random (so nearly every request misses the list cache: the scoring path), next to
# /healthz — first with the exact scan (`ann_min_items = 0`), then with the approximate index
# (the default; the server is polled until `/v1/training` reports `ranking: approximate`, and
# the index's build time and RSS are reported too). Raw JSON lines go to $OUT (default
# bench/results/large-DATE.jsonl).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-1000000:2000000 1000000:6000000 250000:2000000}
ITEMS=${ITEMS:-100000}
ITERATIONS=${ITERATIONS:-5}
DURATION=${DURATION:-15}
CONNECTIONS=${CONNECTIONS:-16}
command -v wrk >/dev/null || { echo "bench/large.sh: needs wrk (apt-get install wrk)" >&2; exit 1; }
[ -n "${SKIP_BUILD:-}" ] || {
    cargo build --release --locked -q -p marquee-cli
    cargo build --release --locked -q -p marquee-recsys --example scale
}
B=$PWD/target/release/marquee
GEN=$PWD/target/release/examples/scale
WORK=$(mktemp -d)
mkdir -p bench/results
OUT=${OUT:-bench/results/large-$(date +%Y%m%d-%H%M%S).jsonl}
SERVER_PID=
stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}
trap 'stop_server; rm -rf "$WORK"' EXIT
MARQUEE_MASTER_KEY=$(head -c 32 /dev/urandom | base64)
export MARQUEE_MASTER_KEY
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_mib() { echo $(( $(awk '/VmRSS/ {print $2}' "/proc/$SERVER_PID/status") / 1024 )); }

printf '[service]\nann_min_items = 0\n' >"$WORK/exact.toml"
printf '[service]\n' >"$WORK/default.toml"

# serve DATA_DIR [CONFIG]: starts the server, waits until it is ready, sets URL.
serve() {
    local port
    port=$(free_port)
    URL=http://127.0.0.1:$port
    MARQUEE_DATA_DIR=$1 "$B" serve --no-models --listen "127.0.0.1:$port" --log-format json \
        --config "${2:-$WORK/default.toml}" >"$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    until curl -sf "$URL/readyz" >/dev/null; do
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
        sleep 0.5
    done
    # Let start-up garbage settle (the allocator returns what it can on its own).
    sleep 2
}

wrk_run() {
    local name=$1 path=$2 key=$3
    local line
    line=$(WRK_PATH=$path WRK_USERS=$WORK/users.txt WRK_KEY=$key \
        wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --timeout 10s -s bench/wrk/random_get.lua "$URL" \
        | grep '^RESULT ' | cut -d' ' -f2-)
    echo "$line" | python3 -c 'import json,sys; d=json.load(sys.stdin); d.update(json.loads(sys.argv[1])); print(json.dumps(d))' \
        "{\"name\": \"$name\"}" | tee -a "$OUT"
}

record() { echo "$1" | tee -a "$OUT"; }

# The floor: a server with one empty tenant.
MARQUEE_DATA_DIR=$WORK/empty "$B" tenants create big >/dev/null
serve "$WORK/empty"
record "{\"name\": \"empty\", \"rss_mib\": $(rss_mib)}"
stop_server

for run in $RUNS; do
    USERS=${run%%:*}
    events=${run##*:}
    dir=$WORK/db-$run
    seq 0 $((USERS - 1)) | sed 's/^/u/' >"$WORK/users.txt"
    echo "bench/large.sh: $USERS users × $ITEMS items × $events events" >&2
    "$GEN" tsv "$USERS" "$ITEMS" "$events" >"$WORK/events.tsv"
    held=$(wc -l <"$WORK/events.tsv")
    t0=$(date +%s.%N)
    MARQUEE_DATA_DIR=$dir "$B" import interactions "$WORK/events.tsv" --tenant big --type view >/dev/null
    t1=$(date +%s.%N)
    MARQUEE_DATA_DIR=$dir "$B" train --tenant big \
        --model "{\"algorithm\":\"ials\",\"factors\":64,\"regularization\":50,\"alpha\":10,\"iterations\":$ITERATIONS,\"seed\":42}" >/dev/null
    t2=$(date +%s.%N)
    rm -f "$WORK/events.tsv"
    key=$(MARQUEE_DATA_DIR=$dir "$B" keys create --tenant big --kind secret --name bench)
    serve "$dir" "$WORK/exact.toml"
    record "$(python3 -c 'import json,sys; print(json.dumps({"name": "loaded", "run": sys.argv[6], "users": int(sys.argv[1]), "events": int(sys.argv[2]), "rss_mib": int(sys.argv[3]), "import_s": round(float(sys.argv[4]), 1), "train_s": round(float(sys.argv[5]), 1)}))' \
        "$USERS" "$held" "$(rss_mib)" "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t1" | bc)" "$run")"
    wrk_run "healthz-$run" /healthz ""
    wrk_run "recommend-$run" '/v1/recommend/{user}?n=10' "$key"
    record "{\"name\": \"after-$run\", \"rss_mib\": $(rss_mib)}"
    stop_server
    # The same data served from the approximate index.
    serve "$dir"
    t0=$(date +%s.%N)
    until curl -sf -H "Authorization: Bearer $key" "$URL/v1/training" | grep -q '"ranking":"approximate"'; do
        sleep 0.5
    done
    record "{\"name\": \"indexed-$run\", \"index_s\": $(echo "$(date +%s.%N) - $t0" | bc), \"rss_mib\": $(rss_mib)}"
    wrk_run "healthz-ann-$run" /healthz ""
    wrk_run "recommend-ann-$run" '/v1/recommend/{user}?n=10' "$key"
    stop_server
    rm -rf "$dir"
done

python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {r["name"]: r for r in rows}
loaded = [r for r in rows if r["name"] == "loaded"]
empty = by["empty"]["rss_mib"]
print(f"\nRSS of a server with one empty tenant: {empty} MiB")
print("| users | events held | import s | train s | RSS MiB | recommend req/s | × /healthz | p50 ms | p99 ms | p99.9 ms |")
print("|---|---|---|---|---|---|---|---|---|---|")
for r in loaded:
    rec, hz = by[f"recommend-{r['run']}"], by[f"healthz-{r['run']}"]
    print(f"| {r['users']:,} | {r['events']:,} | {r['import_s']} | {r['train_s']} | {r['rss_mib']} | "
          f"{rec['rps']:,.0f} | {rec['rps'] / hz['rps']:.2f} | {rec['p50_us'] / 1000:.2f} | "
          f"{rec['p99_us'] / 1000:.2f} | {rec['p999_us'] / 1000:.2f} |")
print("\nWith the approximate index (HNSW, the default from 50,000 items):")
print("| users | index ready after s | RSS MiB | recommend req/s | × /healthz | × exact | p50 ms | p99 ms | p99.9 ms |")
print("|---|---|---|---|---|---|---|---|---|")
for r in loaded:
    idx = by.get(f"indexed-{r['run']}")
    if not idx:
        continue
    rec, hz = by[f"recommend-ann-{r['run']}"], by[f"healthz-ann-{r['run']}"]
    exact = by[f"recommend-{r['run']}"]
    print(f"| {r['users']:,} | {idx['index_s']:.1f} | {idx['rss_mib']} | {rec['rps']:,.0f} | "
          f"{rec['rps'] / hz['rps']:.2f} | {rec['rps'] / exact['rps']:.1f} | "
          f"{rec['p50_us'] / 1000:.2f} | {rec['p99_us'] / 1000:.2f} | {rec['p999_us'] / 1000:.2f} |")
if len(loaded) >= 2 and loaded[0]["users"] == loaded[1]["users"]:
    a, b = loaded[0], loaded[1]
    per_event = (b["rss_mib"] - a["rss_mib"]) / ((b["events"] - a["events"]) / 1e6)
    print(f"\nper 1M events held: {per_event:.0f} MiB")
    if len(loaded) >= 3 and loaded[2]["users"] != a["users"]:
        c = loaded[2]
        # Same catalogue and model size; the event counts differ a little (users with no
        # draw merge away), which the per-event figure accounts for.
        rest = (a["rss_mib"] - c["rss_mib"]) - per_event * (a["events"] - c["events"]) / 1e6
        print(f"per 1M users: {rest / ((a['users'] - c['users']) / 1e6):.0f} MiB")
PY
