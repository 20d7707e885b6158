"""Python side of bench/train_speed.sh: numpy EASE and `implicit` ALS on the split written by
Marquee's `train_speed` example, timed the same way, scored with the same nDCG@10 (full ranking
over train items, the user's train items excluded, binary relevance). Prints one JSON line."""
import json
import os
import statistics
import sys
import time

import numpy as np
import scipy.sparse as sp


def load(path):
    a = np.loadtxt(path, dtype=np.int64, ndmin=2)
    return a[:, 0], a[:, 1]


def ndcg_at_10(score_fn, train, test_users, test_items, n_users, batch=512):
    test = {}
    for u, i in zip(test_users, test_items):
        test.setdefault(int(u), set()).add(int(i))
    users = np.array(sorted(test))
    disc = 1.0 / np.log2(np.arange(2, 12))
    total = 0.0
    for start in range(0, len(users), batch):
        ub = users[start:start + batch]
        s = np.asarray(score_fn(ub), dtype=np.float64)
        rows = train[ub]
        s[rows.nonzero()] = -np.inf
        top = np.argpartition(-s, 10, axis=1)[:, :10]
        order = np.take_along_axis(s, top, 1).argsort(axis=1)[:, ::-1]
        top = np.take_along_axis(top, order, 1)
        for u, t in zip(ub, top):
            rel = test[int(u)]
            dcg = sum(disc[r] for r, i in enumerate(t) if int(i) in rel)
            total += dcg / disc[: min(10, len(rel))].sum()
    return total / len(users)


def median_time(run, prepare=lambda: None):
    """Times `run(prepare())` REPEATS (env, default 3) times, as the Rust side does, only once when
    the first run took over 10 s (`prepare` is not timed); returns the median time in seconds and
    the last run's result."""
    repeats = max(1, int(os.environ.get("REPEATS", "3")))
    times = []
    while True:
        arg = prepare()
        start = time.perf_counter()
        result = run(arg)
        times.append(time.perf_counter() - start)
        if len(times) >= repeats or times[0] > 10:
            return statistics.median(times), result


def main():
    work, lam = sys.argv[1], float(sys.argv[2])
    tu, ti = load(f"{work}/train.tsv")
    su, si = load(f"{work}/test.tsv")
    n_users, n_items = int(tu.max()) + 1, int(ti.max()) + 1
    X = sp.csr_matrix((np.ones(len(tu)), (tu, ti)), shape=(n_users, n_items))
    out = {"users": n_users, "items": n_items, "train_nnz": int(X.nnz)}

    def ease(_):
        # EASE as the anchors measured it: dense float64 Gram matrix and np.linalg.inv.
        G = (X.T @ X).toarray().astype(np.float64)
        G[np.diag_indices(n_items)] += lam
        P = np.linalg.inv(G)
        B = P / (-np.diag(P))
        B[np.diag_indices(n_items)] = 0.0
        return B

    out["numpy_ease_s"], B = median_time(ease)
    out["numpy_ease_ndcg"] = ndcg_at_10(lambda ub: X[ub] @ B, X, su, si, n_users)
    del B

    import implicit
    from implicit.cpu.als import AlternatingLeastSquares

    out["implicit_version"] = implicit.__version__
    # `implicit`'s confidence is alpha·r, Marquee's 1 + alpha·r: alpha 10 here is Marquee's 9.
    configs = {"same_as_marquee": dict(regularization=50.0, alpha=10.0),
               "anchor": dict(regularization=0.05, alpha=10.0)}
    for name, cfg in configs.items():
        Xc = X.astype(np.float32).tocsr()
        # implicit's own advice: its threads, not OpenBLAS's (which would oversubscribe).
        from threadpoolctl import threadpool_limits

        def new_model():
            return AlternatingLeastSquares(factors=64, iterations=15, random_state=42,
                                           calculate_training_loss=False, **cfg)

        def fit(model):
            model.fit(Xc, show_progress=False)
            return model

        with threadpool_limits(1, "blas"):
            out[f"implicit_{name}_s"], model = median_time(fit, new_model)
        uf, itf = model.user_factors, model.item_factors
        out[f"implicit_{name}_ndcg"] = ndcg_at_10(lambda ub: uf[ub] @ itf.T, X, su, si, n_users)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
