"""Picks bench/embeddings.sh's 100 catalogue texts from the TMDB 5000 movies CSV (read-only shared
data; nothing of it is copied into the repo): the movies that have an overview, ordered by TMDB id,
taken at an even stride; each text is `Title. Overview` on one line, as a catalogue item's title and
description would be embedded.
Usage: embeddings_texts.py TMDB_CSV OUT.txt [N]"""
import csv
import sys


def main():
    src, out = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    with open(src, newline="", encoding="utf-8") as f:
        movies = [r for r in csv.DictReader(f) if r["overview"].strip()]
    movies.sort(key=lambda r: int(r["id"]))
    step = len(movies) / n
    chosen = [movies[int(i * step)] for i in range(n)]
    with open(out, "w", encoding="utf-8") as f:
        for r in chosen:
            text = f"{r['title'].strip()}. {r['overview'].strip()}"
            f.write(" ".join(text.split()) + "\n")


if __name__ == "__main__":
    main()
