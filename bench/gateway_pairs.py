"""Gateway overhead as paired latencies: each round sends the same request to the upstream
directly and through each proxy in turn, back to back, on kept-alive connections; a proxy's
figure is the median of its per-round differences from the direct request. The upstream's own
latency drifts by more than the overhead from one wrk run to the next (bench/gateway.sh);
pairing cancels that drift.

    python3 bench/gateway_pairs.py ROUNDS NAME URL KEY MODEL [NAME URL KEY MODEL ...]

The first path is the direct one. Prints one JSON line: rounds, and per path its p50/p99 (ms)
and, for the others, the median and interquartile range of the added latency (ms). The order
within a round rotates, so no path always runs first. Standard library only.
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
    rounds = int(sys.argv[1])
    spec = sys.argv[2:]
    if not spec or len(spec) % 4:
        raise SystemExit(__doc__)
    paths = [
        {"name": spec[i], "conn": client(spec[i + 1]), "key": spec[i + 2], "model": spec[i + 3]}
        for i in range(0, len(spec), 4)
    ]
    for _ in range(20):  # warm every path (connections, caches)
        for p in paths:
            timed(p["conn"], p["key"], p["model"])
    times = {p["name"]: [] for p in paths}
    for r in range(rounds):
        shift = r % len(paths)
        for p in paths[shift:] + paths[:shift]:
            times[p["name"]].append(timed(p["conn"], p["key"], p["model"]))
    direct = times[paths[0]["name"]]
    out = {"rounds": rounds}
    for p in paths:
        t = times[p["name"]]
        row = {"p50_ms": round(statistics.median(t), 3), "p99_ms": round(percentile(t, 0.99), 3)}
        if p is not paths[0]:
            added = [b - a for a, b in zip(direct, t)]
            row["added_median_ms"] = round(statistics.median(added), 3)
            row["added_p25_ms"] = round(percentile(added, 0.25), 3)
            row["added_p75_ms"] = round(percentile(added, 0.75), 3)
        out[p["name"]] = row
    print(json.dumps(out))


if __name__ == "__main__":
    main()
