"""Formats bench/train_speed.sh's JSON lines (one per dataset) as a Markdown table."""
import json
import sys

rows = [json.loads(line) for line in sys.stdin if line.strip()]
print("| dataset | users × items (train nnz) | numpy EASE f64 | Marquee EASE `train()` (route) | ratio "
      "| Marquee EASE fit alone | ratio | Marquee EASE, direct route | ratio "
      "| EASE nDCG@10 numpy / Marquee "
      "| implicit ALS | Marquee iALS `train()` | ratio | Marquee iALS fit alone | ratio "
      "| ALS nDCG@10 implicit (reg 50 / reg 0.05) / Marquee |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    a, p = r["rust"], r["python"]
    cells = [
        a["dataset"],
        f"{a['users']} × {a['items']} ({a['train_nnz']})",
        f"{p['numpy_ease_s']:.2f} s",
        f"{a['ease_train_s']:.2f} s ({a['ease_route']})",
        f"{p['numpy_ease_s'] / a['ease_train_s']:.1f}×",
        f"{a['ease_fit_s']:.3f} s",
        f"{p['numpy_ease_s'] / a['ease_fit_s']:.1f}×",
        f"{a['ease_direct_fit_s']:.3f} s",
        f"{p['numpy_ease_s'] / a['ease_direct_fit_s']:.1f}×",
        f"{p['numpy_ease_ndcg']:.4f} / {a['ease_ndcg']:.4f}",
        f"{p['implicit_same_as_marquee_s']:.2f} s",
        f"{a['ials_train_s']:.2f} s",
        f"{p['implicit_same_as_marquee_s'] / a['ials_train_s']:.2f}×",
        # `train()` also builds the popularity vector and similar-items index every model
        # carries; the fit alone is `train()` minus that (timed as a popularity-only train).
        f"{a['ials_train_s'] - a['common_train_s']:.2f} s",
        f"{p['implicit_same_as_marquee_s'] / (a['ials_train_s'] - a['common_train_s']):.2f}×",
        f"{p['implicit_same_as_marquee_ndcg']:.4f} / {p['implicit_anchor_ndcg']:.4f} / {a['ials_ndcg']:.4f}",
    ]
    print("| " + " | ".join(cells) + " |")
print()
print("Raw:")
for r in rows:
    print("    " + json.dumps(r))
