#!/usr/bin/env bash
# Gateway overhead (issue 8): an OpenAI-compatible upstream — a second Marquee process serving
# the embeddings model — called directly, and through Marquee's upstream routing with its
# auth, limits and metering, alternately, in one run.
#   bench/gateway.sh        (needs wrk and the models: `marquee models pull`)
# Environment: DURATION (s per run, default 15), ROUNDS (default 3), CONNECTIONS (default 1:
# latency, not throughput, is the figure), PAIRS (paired rounds after the wrk rounds, default
# 1000), MARQUEE_MODELS_DIR. With nginx installed, a bare nginx proxy is the baseline hop.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-15}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-1}
PAIRS=${PAIRS:-1000}
command -v wrk >/dev/null || { echo "bench/gateway.sh: needs wrk (apt-get install wrk)" >&2; exit 1; }
[ -n "${SKIP_BUILD:-}" ] || {
    cargo build --release --locked -q -p marquee-cli
    cargo build --release --locked -q -p marquee-server --example bare_proxy
}
B=$PWD/target/release/marquee
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
MARQUEE_MASTER_KEY=$(head -c 32 /dev/urandom | base64)
export MARQUEE_MASTER_KEY
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() { until curl -sf "$1/readyz" >/dev/null; do sleep 0.2; done; }

# The upstream: a Marquee with the embeddings model, and a key for the gateway to use.
UP_PORT=$(free_port)
MARQUEE_DATA_DIR=$WORK/up "$B" tenants create upstream >/dev/null
UPSTREAM_KEY=$(MARQUEE_DATA_DIR=$WORK/up "$B" keys create --tenant upstream --kind secret)
export UPSTREAM_KEY
MARQUEE_DATA_DIR=$WORK/up "$B" serve --listen "127.0.0.1:$UP_PORT" >"$WORK/up.log" 2>&1 &
PIDS+=($!)
# The gateway: no models of its own, the upstream's model under the name `up-embed`.
GW_PORT=$(free_port)
cat >"$WORK/gateway.toml" <<TOML
[[upstream]]
name = "up-embed"
base_url = "http://127.0.0.1:$UP_PORT/v1"
model = "all-minilm-l6-v2"
api_key_env = "UPSTREAM_KEY"
kind = "embeddings"
timeout_secs = 30
TOML
MARQUEE_DATA_DIR=$WORK/gw "$B" tenants create app >/dev/null
APP_KEY=$(MARQUEE_DATA_DIR=$WORK/gw "$B" keys create --tenant app --kind secret)
MARQUEE_DATA_DIR=$WORK/gw "$B" serve --no-models --config "$WORK/gateway.toml" \
    --listen "127.0.0.1:$GW_PORT" >"$WORK/gw.log" 2>&1 &
PIDS+=($!)
wait_ready "http://127.0.0.1:$UP_PORT"
wait_ready "http://127.0.0.1:$GW_PORT"

run() {
    local name=$1 url=$2 key=$3 model=$4
    WRK_PATH=/v1/embeddings WRK_METHOD=POST WRK_KEY=$key \
    WRK_BODY="{\"model\": \"$model\", \"input\": \"A heist in Lyon goes wrong\"}" \
        wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --timeout 10s -s bench/wrk/random_get.lua "$url" \
        | grep '^RESULT ' | cut -d' ' -f2- \
        | python3 -c 'import json,sys; d=json.load(sys.stdin); d["name"]=sys.argv[1]; print(json.dumps(d))' "$name"
}
RESULTS=$WORK/results.jsonl
for _ in $(seq 1 "$ROUNDS"); do
    run direct "http://127.0.0.1:$UP_PORT" "$UPSTREAM_KEY" all-minilm-l6-v2 >>"$RESULTS"
    run gateway "http://127.0.0.1:$GW_PORT" "$APP_KEY" up-embed >>"$RESULTS"
done
python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| path | round | requests/s | p50 ms | p99 ms | errors |")
print("|---|---|---|---|---|---|")
for i, r in enumerate(rows):
    print(f"| {r['name']} | {i // 2 + 1} | {r['rps']:,.0f} | {r['p50_us']/1000:.3f} | {r['p99_us']/1000:.3f} | {r['errors']} |")
d = [r["p50_us"] for r in rows if r["name"] == "direct"]
g = [r["p50_us"] for r in rows if r["name"] == "gateway"]
added = [b - a for a, b in zip(d, g)]
print(f"\nadded p50 per round (ms): {', '.join(f'{x/1000:.3f}' for x in added)}; median {statistics.median(added)/1000:.3f}")
PY

# The same, paired: one request each way back to back, the median of the differences (the
# upstream's drift between wrk runs is larger than the overhead; pairing cancels it). Where
# nginx is installed, a bare nginx reverse proxy (kept-alive upstream connections, no auth,
# no logs) is measured in the same rounds: the cost of one more loopback hop on this machine,
# the floor under any gateway. So is a bare axum + reqwest proxy (`bare_proxy`, no auth,
# limits or metering): the floor of a proxy on Marquee's own stack (Tokio, hyper).
PATHS=(direct "http://127.0.0.1:$UP_PORT" "$UPSTREAM_KEY" all-minilm-l6-v2)
if command -v nginx >/dev/null; then
    NGX_PORT=$(free_port)
    mkdir -p "$WORK/nginx"
    cat >"$WORK/nginx/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx;
    proxy_temp_path $WORK/nginx;
    upstream marquee { server 127.0.0.1:$UP_PORT; keepalive 8; }
    server {
        listen 127.0.0.1:$NGX_PORT;
        location / {
            proxy_pass http://marquee;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
NGINX
    nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" &
    PIDS+=($!)
    until curl -s -o /dev/null "http://127.0.0.1:$NGX_PORT/"; do sleep 0.1; done
    PATHS+=(nginx "http://127.0.0.1:$NGX_PORT" "$UPSTREAM_KEY" all-minilm-l6-v2)
else
    echo "(nginx not installed: no bare-proxy baseline; apt-get install nginx-light)"
fi
BARE_PORT=$(free_port)
"$PWD/target/release/examples/bare_proxy" "http://127.0.0.1:$UP_PORT/v1/embeddings" \
    "127.0.0.1:$BARE_PORT" &
PIDS+=($!)
until curl -s -o /dev/null "http://127.0.0.1:$BARE_PORT/"; do sleep 0.1; done
PATHS+=(axum-reqwest "http://127.0.0.1:$BARE_PORT" "$UPSTREAM_KEY" all-minilm-l6-v2)
PATHS+=(gateway "http://127.0.0.1:$GW_PORT" "$APP_KEY" up-embed)
echo
echo "paired ($PAIRS rounds, bench/gateway_pairs.py):"
python3 bench/gateway_pairs.py "$PAIRS" "${PATHS[@]}" >"$WORK/pairs.json"
python3 - "$WORK/pairs.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print("| path | p50 ms | p99 ms | added, median (p25 – p75) ms |")
print("|---|---|---|---|")
for name, r in d.items():
    if name == "rounds":
        continue
    added = "–"
    if "added_median_ms" in r:
        added = f"{r['added_median_ms']:.3f} ({r['added_p25_ms']:.3f} – {r['added_p75_ms']:.3f})"
    print(f"| {name} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {added} |")
PY
