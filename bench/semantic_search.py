#!/usr/bin/env python3
"""Semantic catalogue search benchmark: the HTTP side of bench/semantic_search.sh.

Standard library only. Given a running server and two tenants' secret keys, it
  1. loads every ml-latest-small movie into tenant FULL (title, genres, user tags, and the TMDB
     overview as `description` where the movie joins TMDB 5000 by tmdbId) and into tenant BARE
     (the same without the overview), one tenant after the other, timing each until
     `x-marquee-indexed-items` reads n/n;
  2. asks a handful of natural-language questions about well-known films (rank of the film);
  3. measures recall@10 of (a) overview -> title on BARE and (b) tagline -> film on FULL, with the
     latency of every search over HTTP;
  4. prints a Markdown table and writes results.json, results.md (the BENCHMARKS.md section) and
     per-query details into the output directory.

Usage: semantic_search.py --base URL --key-full K --key-bare K --data DIR --out DIR
                          [--sample N] [--machine TEXT] [--command TEXT] [--date TEXT]
                          [--record BENCHMARKS.md]
"""

import argparse
import csv
import http.client
import json
import random
import statistics
import sys
import textwrap
import time
import urllib.parse
from collections import Counter

BATCH = 2000  # items per POST /v1/items (the API takes up to 10,000; bodies stay well under 10 MiB)

# (query, accepted movieIds: the film first, then sequels that also answer it)
NAMED_QUERIES = [
    ("a robot left alone on Earth falls in love", ["60069"]),  # WALL·E
    ("a shark terrorises a beach town", ["1387"]),  # Jaws
    ("a boy wizard goes to a school of magic",
     ["4896", "5816", "8368", "40815", "54001", "69844", "81834", "88125"]),  # Harry Potter
    ("toys come alive when people leave the room", ["1", "3114", "78499"]),  # Toy Story
    ("a clownfish searches the ocean for his lost son", ["6377"]),  # Finding Nemo
    ("a hacker learns that the world is a computer simulation", ["2571"]),  # The Matrix
    ("a poor artist and a rich girl fall in love on a sinking ship", ["1721"]),  # Titanic
    ("dinosaurs brought back to life escape in a theme park", ["480"]),  # Jurassic Park
    ("a weatherman lives the same day over and over", ["1265"]),  # Groundhog Day
    ("a lion cub flees after his father's death and returns to claim the throne",
     ["364"]),  # The Lion King
    ("an old man ties balloons to his house and flies away",
     ["68954"]),  # Up
    ("a teenager travels back in time and meets his parents", ["1270"]),  # Back to the Future
]
# Facts about the data that explain a rank, printed under the table.
NAMED_NOTES = {"68954": "Up's TMDB overview does not mention the balloons, nor do its genres or "
                        "tags, so nothing in its text answers that query."}
NAMED_DEPTH = 100  # results asked for named queries, so ranks past 10 still show


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# --- data -----------------------------------------------------------------------------------

def load_data(data_dir):
    csv.field_size_limit(1 << 30)
    ml = f"{data_dir}/ml-latest-small"
    with open(f"{ml}/movies.csv", encoding="utf-8", newline="") as f:
        movies = list(csv.DictReader(f))
    with open(f"{ml}/links.csv", encoding="utf-8", newline="") as f:
        links = {r["movieId"]: r["tmdbId"].strip() for r in csv.DictReader(f)}
    # Tags as `marquee import movielens` makes them: distinct strings, most used first, ≤ 256.
    tag_counts = {}
    with open(f"{ml}/tags.csv", encoding="utf-8", newline="") as f:
        for r in csv.DictReader(f):
            t = r["tag"].strip()
            if t and len(t.encode()) <= 256 and not any(ord(c) < 32 for c in t):
                c = tag_counts.setdefault(r["movieId"], Counter())
                c[t] += 1
    with open(f"{data_dir}/tmdb-5000-movies/tmdb_5000_movies.csv", encoding="utf-8",
              newline="") as f:
        tmdb = {r["id"].strip(): r for r in csv.DictReader(f)}

    full, bare, joined = [], [], []
    for m in movies:
        mid = m["movieId"].strip()
        genres = [g for g in m["genres"].split("|") if g and g != "(no genres listed)"]
        tags = [t for t, _ in sorted(tag_counts.get(mid, Counter()).items(),
                                     key=lambda kv: (-kv[1], kv[0]))][:256]
        meta = {}
        t = tmdb.get(links.get(mid, ""))
        if links.get(mid):
            meta["tmdb_id"] = int(links[mid])
        item = {"id": mid, "title": m["title"].strip(), "categories": genres, "tags": tags,
                "metadata": meta}
        bare.append(dict(item))
        overview = (t or {}).get("overview", "").strip()
        if overview:
            item["description"] = overview
        full.append(item)
        if t is not None:
            joined.append({"id": mid, "title": m["title"].strip(), "overview": overview,
                           "tagline": t.get("tagline", "").strip(), "tmdb_id": links[mid]})
    return full, bare, joined


# --- HTTP -----------------------------------------------------------------------------------

class Client:
    """One keep-alive connection, so latency is the server's work plus loopback, not TCP setup."""

    def __init__(self, base, key):
        u = urllib.parse.urlsplit(base)
        self.host, self.port = u.hostname, u.port
        self.key = key
        self.conn = None
        self.model = ""  # x-marquee-model of the last search

    def request(self, method, path, body=None):
        headers = {"Authorization": f"Bearer {self.key}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=600)
            try:
                self.conn.request(method, path, body=data, headers=headers)
                resp = self.conn.getresponse()
                payload = resp.read()
                break
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        if resp.status >= 300:
            raise RuntimeError(f"{method} {path[:80]}: {resp.status} {payload[:300]!r}")
        return resp, json.loads(payload) if payload else None

    def search(self, q, n=10):
        path = "/v1/search?" + urllib.parse.urlencode({"q": q, "n": n})
        t0 = time.perf_counter()
        resp, hits = self.request("GET", path)
        dt = time.perf_counter() - t0
        self.model = resp.getheader("x-marquee-model", self.model)
        return hits, resp.getheader("x-marquee-indexed-items", ""), dt


def loadavg():
    """The 1-minute load average (the machine is shared: a high one means contended figures)."""
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return float("nan")


def load_and_index(client, items, label):
    """POSTs the items, then polls until all have vectors; returns the timings."""
    t0 = time.perf_counter()
    for i in range(0, len(items), BATCH):
        client.request("POST", "/v1/items", items[i:i + BATCH])
    t_posted = time.perf_counter() - t0
    n = len(items)
    last_log = 0.0
    polls = 0
    loads = []
    while True:
        _, indexed, _ = client.search("x", n=1)
        polls += 1
        loads.append(loadavg())
        elapsed = time.perf_counter() - t0
        if indexed == f"{n}/{n}":
            break
        if elapsed - last_log >= 15:
            log(f"  {label}: {indexed} indexed after {elapsed:.0f} s")
            last_log = elapsed
        time.sleep(0.5)
    total = time.perf_counter() - t0
    log(f"  {label}: {n} items posted in {t_posted:.1f} s, all indexed after {total:.1f} s")
    return {"items": n, "post_s": round(t_posted, 2), "indexed_s": round(total, 1),
            "items_per_s": round(n / total, 1), "polls": polls,
            "mean_load": round(statistics.mean(loads), 1)}


def text_stats(items):
    # Rough length of the text Marquee embeds (semantic::item_text): title, description,
    # "Genres: …", "Tags: …" joined by ". ".
    lens = []
    for it in items:
        parts = [it["title"]]
        if it.get("description"):
            parts.append(it["description"])
        if it["categories"]:
            parts.append("Genres: " + ", ".join(it["categories"]))
        if it["tags"]:
            parts.append("Tags: " + ", ".join(it["tags"]))
        lens.append(len(". ".join(parts)))
    return {"mean_chars": round(statistics.mean(lens)), "median_chars": statistics.median(lens)}


# --- evaluation -----------------------------------------------------------------------------

def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = min(len(xs) - 1, max(0, round(p / 100 * (len(xs) - 1))))
    return xs[k]


def latency(ms):
    return {"n": len(ms), "p50_ms": round(pct(ms, 50), 1), "p90_ms": round(pct(ms, 90), 1),
            "p99_ms": round(pct(ms, 99), 1), "max_ms": round(max(ms), 1),
            "mean_ms": round(statistics.mean(ms), 1)}


def has_tie(hits):
    scores = [h["score"] for h in hits]
    return any(a == b for a, b in zip(scores, scores[1:]))


def split_recall(rows, tagged):
    sel = [r for r in rows if r["tagged"] == tagged]
    return [round(sum(1 for r in sel if r["rank"]) / len(sel), 4) if sel else None, len(sel)]


def run_protocol(client, queries, label, by_id):
    """queries: [(query text, movieId)]; hit if the movie is in the top 10."""
    rows, ms = [], []
    top10_counts, top1_counts = Counter(), Counter()
    t0 = time.perf_counter()
    loads = []
    for i, (q, mid) in enumerate(queries):
        if i % 50 == 0:
            loads.append(loadavg())
        hits, _, dt = client.search(q, n=10)
        ms.append(dt * 1000)
        ids = [h["item_id"] for h in hits]
        rank = ids.index(mid) + 1 if mid in ids else None
        top10_counts.update(ids)
        if ids:
            top1_counts[ids[0]] += 1
        tie_at_target = rank is not None and any(
            h["score"] == hits[rank - 1]["score"] for j, h in enumerate(hits) if j != rank - 1)
        rows.append({"id": mid, "rank": rank, "tie": has_tie(hits),
                     "tagged": bool(by_id[mid]["tags"]),
                     "tie_at_target": tie_at_target,
                     "top": [[h["item_id"], h["title"], round(h["score"], 4)] for h in hits[:3]]})
        if (i + 1) % 500 == 0:
            log(f"  {label}: {i + 1}/{len(queries)} queries, {time.perf_counter() - t0:.0f} s")
    n = len(rows)
    ranks = [r["rank"] for r in rows]
    summary = {
        "queries": n,
        "recall_at_1": round(sum(1 for r in ranks if r == 1) / n, 4),
        "recall_at_3": round(sum(1 for r in ranks if r and r <= 3) / n, 4),
        "recall_at_10": round(sum(1 for r in ranks if r) / n, 4),
        "mrr_at_10": round(sum(1 / r for r in ranks if r) / n, 4),
        "recall_at_10_tagged": split_recall(rows, True),
        "recall_at_10_untagged": split_recall(rows, False),
        "queries_with_tied_scores": sum(1 for r in rows if r["tie"]),
        "hits_tied_with_another_item": sum(1 for r in rows if r["tie_at_target"]),
        "wall_s": round(time.perf_counter() - t0, 1),
        "mean_load": round(statistics.mean(loads), 1),
        "latency": latency(ms),
        "ms": ms,
        "hubs_top10": top10_counts.most_common(10),
        "hubs_top1": top1_counts.most_common(5),
    }
    return summary, rows


def named(client, items_by_id):
    out = []
    for q, accepted in NAMED_QUERIES:
        hits, _, dt = client.search(q, n=NAMED_DEPTH)
        ids = [h["item_id"] for h in hits]
        rank = next((i + 1 for i, x in enumerate(ids) if x in accepted), None)
        out.append({"query": q, "film": items_by_id[accepted[0]]["title"],
                    "note": NAMED_NOTES.get(accepted[0], ""),
                    "overview": bool(items_by_id[accepted[0]].get("description")),
                    "rank": rank, "matched": ids[rank - 1] if rank else None,
                    "top5": [[h["title"], round(h["score"], 3)] for h in hits[:5]],
                    "ms": round(dt * 1000, 1)})
    return out


def fmt_rank(r):
    return str(r) if r else f">{NAMED_DEPTH}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--key-full", required=True)
    ap.add_argument("--key-bare", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--sample", type=int, default=0,
                    help="queries per protocol (random, seed 42); 0: all")
    ap.add_argument("--machine", default="")
    ap.add_argument("--command", default="bench/semantic_search.sh")
    ap.add_argument("--date", default="")
    ap.add_argument("--record", default="",
                    help="Markdown file whose semantic-search section is replaced (or appended)")
    args = ap.parse_args()

    full_items, bare_items, joined = load_data(args.data)
    by_id = {it["id"]: it for it in full_items}
    log(f"{len(full_items)} movies, {len(joined)} joined to TMDB 5000 "
        f"({sum(1 for j in joined if j['overview'])} with an overview, "
        f"{sum(1 for j in joined if j['tagline'])} with a tagline)")
    full, bare = Client(args.base, args.key_full), Client(args.base, args.key_bare)

    log("== indexing tenant `full` (with overviews)")
    idx_full = load_and_index(full, full_items, "full")
    idx_full.update(text_stats(full_items))
    log("== indexing tenant `bare` (title, genres, tags)")
    idx_bare = load_and_index(bare, bare_items, "bare")
    idx_bare.update(text_stats(bare_items))

    # The HTTP floor: a keyed read that embeds nothing, to tell transport from model time.
    floor_ms = []
    for it in full_items[:200]:
        t0 = time.perf_counter()
        full.request("GET", f"/v1/items/{urllib.parse.quote(it['id'])}")
        floor_ms.append((time.perf_counter() - t0) * 1000)
    floor = latency(floor_ms)
    log(f"== HTTP floor (GET /v1/items/ID): p50 {floor['p50_ms']} ms, p99 {floor['p99_ms']} ms")

    log("== named queries")
    named_full = named(full, by_id)
    named_bare = named(bare, by_id)
    for a, b in zip(named_full, named_bare):
        log(f"  {fmt_rank(a['rank']):>4} (bare {fmt_rank(b['rank']):>4})  {a['query']!r} -> "
            f"{a['film']}; top 5: " + " | ".join(t for t, _ in a["top5"]))

    rng = random.Random(42)
    qa = [(j["overview"], j["id"]) for j in joined if j["overview"]]
    qb = [(j["tagline"], j["id"]) for j in joined if j["tagline"]]
    if args.sample and args.sample < len(qa):
        qa = rng.sample(qa, args.sample)
    if args.sample and args.sample < len(qb):
        qb = rng.sample(qb, args.sample)
    log(f"== (a) overview -> title on `bare`, {len(qa)} queries")
    sum_a, rows_a = run_protocol(bare, qa, "(a)", by_id)
    log(f"== (b) tagline -> film on `full`, {len(qb)} queries")
    sum_b, rows_b = run_protocol(full, qb, "(b)", by_id)
    # Latency over every measured search of both protocols together.
    lat_all = latency(sum_a.pop("ms") + sum_b.pop("ms"))

    results = {"date": args.date, "machine": args.machine, "command": args.command,
               "model": full.model, "movies": len(full_items), "joined": len(joined),
               "sample": args.sample,
               "index_full": idx_full, "index_bare": idx_bare,
               "named_full": named_full, "named_bare": named_bare,
               "overview_to_title": sum_a, "tagline_to_film": sum_b, "latency_all": lat_all,
               "http_floor": floor}
    with open(f"{args.out}/results.json", "w") as f:
        json.dump(results, f, indent=1, ensure_ascii=False)
    with open(f"{args.out}/queries.json", "w") as f:
        json.dump({"overview_to_title": rows_a, "tagline_to_film": rows_b}, f,
                  ensure_ascii=False)

    md = section(results, by_id)
    with open(f"{args.out}/results.md", "w") as f:
        f.write(md)
    print(md)
    if args.record:
        record(args.record, md)
        log(f"section written to {args.record}")


HEADING = "## Semantic catalogue search"


def record(path, md):
    """Replaces this benchmark's section (its heading up to the next `## `) or appends it."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    start = text.find("\n" + HEADING)
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + md
    else:
        end = text.find("\n## ", start + 1)
        rest = text[end:] if end >= 0 else ""
        text = text[:start + 1] + md + rest
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def hub_list(hubs, by_id, with_overview, k=5):
    """The most frequent items of the result lists, with what their indexed text holds."""
    def what(it):
        g, t = len(it["categories"]), len(it["tags"])
        parts = [f"{g} genre{'' if g == 1 else 's'}", f"{t} tag{'' if t == 1 else 's'}"]
        if with_overview:
            parts.append("overview" if it.get("description") else "no overview")
        return ", ".join(parts)
    return "; ".join(f"{by_id[i]['title']} ({c}\u00d7, {what(by_id[i])})" for i, c in hubs[:k])


def split(x):
    value, n = x
    return f"{value:.3f} ({n:,} queries)" if value is not None else "– (0 queries)"


def section(r, by_id):
    a, b = r["overview_to_title"], r["tagline_to_film"]
    fi, bi = r["index_full"], r["index_bare"]
    wall = next(x for x in r["named_full"] if x["film"].startswith("WALL"))
    L = []
    L.append("## Semantic catalogue search (ml-latest-small + TMDB 5000 overviews)\n")
    L.append(f"Measured {r['date']} on {r['machine']}; release build, model `{r['model']}` "
             f"(the server's embedding model, `x-marquee-model`), one client, searches one at "
             f"a time over a keep-alive HTTP connection.\n")
    L.append(f"Command: `{r['command']}` (builds `target/release/marquee`, starts it on a fresh "
             f"data directory with two tenants, loads the catalogue over `POST /v1/items` and "
             f"queries `GET /v1/search`; details of every query land in "
             f"`bench/.work/semantic_search/`).\n")
    L.append(f"Catalogue: all {r['movies']:,} ml-latest-small movies (title, genres as categories, "
             f"user tags from `tags.csv`); {r['joined']:,} of them join TMDB 5000 by `tmdbId`. "
             f"Tenant `full` also has the TMDB overview as `description` for those; tenant `bare` "
             f"has no overviews. Taglines are indexed in neither.\n")
    L.append("| figure | value |")
    L.append("|---|---|")
    L.append(f"| WALL·E for \u201c{wall['query']}\u201d (tenant `full`; goal: top 3) | rank "
             f"{fmt_rank(wall['rank'])} |")
    L.append(f"| (a) overview \u2192 title, recall@10 (tenant `bare`, {a['queries']:,} queries) | "
             f"**{a['recall_at_10']:.3f}** (R@1 {a['recall_at_1']:.3f}, MRR@10 "
             f"{a['mrr_at_10']:.3f}) |")
    L.append(f"| (b) tagline \u2192 film, recall@10 (tenant `full`, {b['queries']:,} queries) | "
             f"**{b['recall_at_10']:.3f}** (R@1 {b['recall_at_1']:.3f}, MRR@10 "
             f"{b['mrr_at_10']:.3f}) |")
    L.append(f"| search latency over HTTP, all {r['latency_all']['n']:,} searches of (a) and (b) | "
             f"p50 {r['latency_all']['p50_ms']} ms, p99 {r['latency_all']['p99_ms']} ms |")
    L.append(f"| for comparison: `GET /v1/items/{{id}}` (no model) over the same connection | "
             f"p50 {r['http_floor']['p50_ms']} ms, p99 {r['http_floor']['p99_ms']} ms |")
    L.append(f"| search latency over HTTP, overview queries (a) | p50 {a['latency']['p50_ms']} ms, "
             f"p99 {a['latency']['p99_ms']} ms |")
    L.append(f"| search latency over HTTP, tagline queries (b) | p50 {b['latency']['p50_ms']} ms, "
             f"p99 {b['latency']['p99_ms']} ms |")
    L.append(f"| background indexing, tenant `full` ({fi['items']:,} items, mean "
             f"{fi['mean_chars']} chars of text) | {fi['indexed_s']} s, "
             f"**{fi['items_per_s']} items/s** |")
    L.append(f"| background indexing, tenant `bare` ({bi['items']:,} items, mean "
             f"{bi['mean_chars']} chars) | {bi['indexed_s']} s, **{bi['items_per_s']} items/s** |")
    L.append("")
    L.append(f"The cores were shared with other work: mean 1-minute load average "
             f"{fi['mean_load']} while `full` was indexed, {bi['mean_load']} while `bare` was, "
             f"{a['mean_load']} / {b['mean_load']} during the queries of (a) / (b), on "
             f"{r['machine'].split(' ')[0]} cores; times carry that noise.\n")
    L.append("Natural-language questions about well-known films (rank of the film, or of a sequel "
             "where one answers too, among 100 results):\n")
    L.append("| query | film | rank, `full` | rank, `bare` | top 3 in `full` |")
    L.append("|---|---|---|---|---|")
    for x, y in zip(r["named_full"], r["named_bare"]):
        top3 = " · ".join(t for t, _ in x["top5"][:3])
        film = x["film"] if x["overview"] else f"{x['film']} (no TMDB overview)"
        L.append(f"| {x['query']} | {film} | {fmt_rank(x['rank'])} | "
                 f"{fmt_rank(y['rank'])} | {top3} |")
    notes = [x["note"] for x in r["named_full"] if x.get("note")]
    if notes:
        L.append("")
        L.append(" ".join(notes))
    if r["sample"]:
        sampling = (f"{r['sample']} queries per protocol, drawn at random with seed 42 "
                    f"(`SAMPLE=0` queries every joined movie).")
    else:
        sampling = ("Every joined movie is queried, no sampling (`SAMPLE=N` draws N per protocol "
                    "with seed 42). Two movieIds share one tmdbId (4912), so they share a query "
                    "text; each counts only itself.")
    L.append("")
    L.append(
        "Protocols. **(a) overview \u2192 title**: the query is a movie's TMDB overview, searched "
        "in tenant `bare`, whose items carry no overview, so the query text is not in the index "
        "and the model must connect a plot summary to a title, genres and user tags; a hit is the "
        "movie in the top 10. This is the honest figure. **(b) tagline \u2192 film**: the query "
        "is the TMDB tagline (the non-empty ones), searched in tenant `full`, where the overview "
        "is indexed but the tagline is not; a hit is the movie in the top 10. " + sampling +
        " Latency is the client-side time of each `GET /v1/search?n=10` (embedding the query, "
        "scoring every item, JSON), after indexing has finished.\n")
    L.append(
        f"Recall@10 of movies with user tags / without: (a) {split(a['recall_at_10_tagged'])} / "
        f"{split(a['recall_at_10_untagged'])}; (b) {split(b['recall_at_10_tagged'])} / "
        f"{split(b['recall_at_10_untagged'])}. Result lists with two equal scores: "
        f"{a['queries_with_tied_scores']} of {a['queries']:,} in (a), "
        f"{b['queries_with_tied_scores']} of {b['queries']:,} in (b).\n")
    L.append(
        f"Items that turn up most often in the top 10 (out of {a['queries']:,} / "
        f"{b['queries']:,} lists) \u2014 (a): {hub_list(a['hubs_top10'], by_id, False)}; "
        f"(b): {hub_list(b['hubs_top10'], by_id, True)}.")
    # Prose wrapped at 100 columns like the rest of BENCHMARKS.md; tables and headings as they are.
    L = [x if x.startswith(("|", "#")) or not x.strip() else
         textwrap.fill(x.rstrip("\n"), 100, break_long_words=False, break_on_hyphens=False)
         + "\n" * (len(x) - len(x.rstrip("\n"))) for x in L]
    return "\n".join(L).rstrip("\n") + "\n"


if __name__ == "__main__":
    main()
