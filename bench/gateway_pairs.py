"""Gateway overhead as paired latencies: each round sends one request to the upstream directly and
the same request through the gateway, back to back, on kept-alive connections, and the figure
is the median of the per-pair differences. The upstream's own latency drifts by more than the
overhead from one wrk run to the next (bench/gateway.sh); pairing cancels that drift.

    python3 bench/gateway_pairs.py DIRECT_URL DIRECT_KEY DIRECT_MODEL GATEWAY_URL GATEWAY_KEY GATEWAY_MODEL [PAIRS]

Prints one JSON line: pairs, direct and gateway p50/p99 (ms), and the median and interquartile
range of the added latency (ms). The order within a pair alternates, so neither side always
runs first. Standard library only.
"""

import http.client
import json
import statistics
import sys
import time
from urllib.parse import urlparse


def client(url):
    u = urlparse(url)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=30)


def timed(conn, key, model):
    body = json.dumps({"model": model, "input": "A heist in Lyon goes wrong"})
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    start = time.perf_counter()
    conn.request("POST", "/v1/embeddings", body, headers)
    response = conn.getresponse()
    payload = response.read()
    elapsed = time.perf_counter() - start
    if response.status != 200:
        raise SystemExit(f"{response.status}: {payload[:200]!r}")
    return elapsed * 1000


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main():
    direct_url, direct_key, direct_model, gw_url, gw_key, gw_model = sys.argv[1:7]
    pairs = int(sys.argv[7]) if len(sys.argv) > 7 else 1000
    direct, gateway = client(direct_url), client(gw_url)
    for _ in range(20):  # warm both paths (connections, caches)
        timed(direct, direct_key, direct_model)
        timed(gateway, gw_key, gw_model)
    d, g = [], []
    for i in range(pairs):
        if i % 2 == 0:
            d.append(timed(direct, direct_key, direct_model))
            g.append(timed(gateway, gw_key, gw_model))
        else:
            g.append(timed(gateway, gw_key, gw_model))
            d.append(timed(direct, direct_key, direct_model))
    added = [b - a for a, b in zip(d, g)]
    print(json.dumps({
        "pairs": pairs,
        "direct_p50_ms": round(statistics.median(d), 3),
        "direct_p99_ms": round(percentile(d, 0.99), 3),
        "gateway_p50_ms": round(statistics.median(g), 3),
        "gateway_p99_ms": round(percentile(g, 0.99), 3),
        "added_median_ms": round(statistics.median(added), 3),
        "added_p25_ms": round(percentile(added, 0.25), 3),
        "added_p75_ms": round(percentile(added, 0.75), 3),
        "p50_difference_ms": round(statistics.median(g) - statistics.median(d), 3),
    }))


if __name__ == "__main__":
    main()
