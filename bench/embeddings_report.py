"""Compares bench/embeddings.sh's two sides: cosine between Marquee's vectors and the reference's
(per text, computed in full though both sides L2-normalise), token counts, and throughput ratios
from the alternating passes. Prints a Markdown snippet (also written to OUT.md) and the raw JSON.
Usage: embeddings_report.py OURS.json REF.json SUMMARY.json OUT.md MACHINE"""
import datetime
import json
import math
import sys


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def rate(s):
    return f"{s['texts_per_s_median']:.1f} ({s['texts_per_s_mean']:.1f}, {s['passes']} passes)"


def main():
    ours_path, ref_path, summary_path, out_md, machine = sys.argv[1:6]
    ours, ref = json.load(open(ours_path)), json.load(open(ref_path))
    summary = json.load(open(summary_path))
    a, r = summary["marquee"], summary["reference"]
    assert len(ours["vectors"]) == len(ref["vectors"]), "the two sides embedded different texts"
    cos = [cosine(x, y) for x, y in zip(ours["vectors"], ref["vectors"])]
    worst = min(range(len(cos)), key=cos.__getitem__)
    token_mismatch = sum(x != y for x, y in zip(ours["tokens"], ref["tokens"]))
    lines = []
    w = lines.append
    w(f"all-MiniLM-L6-v2 on {len(cos)} TMDB catalogue texts (`Title. Overview`; {a['tokens_total']} "
      f"tokens, {a['tokens_total'] / len(cos):.0f} a text on average, longest {a['tokens_max']}); "
      f"{datetime.date.today().isoformat()}; {machine}.")
    w(f"Reference: {r['side']}, CPU, `torch.set_num_threads({r['threads']})`; Marquee: {a['side']}, "
      f"`RAYON_NUM_THREADS={a['threads']}`. Passes of the two sides alternate.")
    w("")
    w(f"Cosine Marquee vs reference: min {min(cos):.7f} (text {worst}; 1 − cos = {1 - min(cos):.1e}), "
      f"mean {sum(cos) / len(cos):.7f} "
      f"(goal ≥ 0.999: {'met' if min(cos) >= 0.999 else 'NOT met'}); token counts equal on "
      f"{len(cos) - token_mismatch} of {len(cos)} texts.")
    w("")
    w("| calls of | reference texts/s, median (mean, passes) | Marquee texts/s, median (mean, passes) "
      "| Marquee / reference |")
    w("|---|---|---|---|")
    ratios = {}
    for key, label in (("batch1", "1 text"), ("batch32", "32 texts")):
        ratio = a[key]["texts_per_s_median"] / r[key]["texts_per_s_median"]
        ratios[label] = ratio
        w(f"| {label} | {rate(r[key])} | {rate(a[key])} | {ratio:.2f}× |")
    if "batch32b" in a:
        ratio = a["batch32b"]["texts_per_s_median"] / r["batch32"]["texts_per_s_median"]
        w(f"| 32 texts, cut by length before `embed` (diagnostic) | (as above) | {rate(a['batch32b'])} "
          f"| {ratio:.2f}× |")
    w("")
    w(f"Goal ≥ 1×: " + ", ".join(f"{k} {'met' if v >= 1 else 'NOT met'}" for k, v in ratios.items())
      + f". Tokenizer alone, one pass over the texts: Marquee {a['tokenize_pass_s'] * 1000:.1f} ms, "
      f"reference {r['tokenize_pass_s'] * 1000:.1f} ms. Model load: Marquee {a['load_s']:.2f} s, "
      f"reference {r['load_s']:.2f} s.")
    text = "\n".join(lines) + "\n"
    with open(out_md, "w") as f:
        f.write(text)
    print(text)
    print("Raw:")
    print("    " + json.dumps(summary))


if __name__ == "__main__":
    main()
