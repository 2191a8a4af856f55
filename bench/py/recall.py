"""Tie-aware recall@k of a hits file against exact ground truth (BENCHMARKS.md).

    recall.py HITS.jsonl BASE.npy QUERIES.npy GT_IDS.npy --metric cosine|l2 [--k 10] [--tol 1e-6]

A returned id counts as a hit if its TRUE score (recomputed here in float64 from the base vectors) is at
least the k-th true score minus tol (cosine), or its true distance is at most the k-th true distance plus
tol (l2). The k-th true score is recomputed the same way from the ground truth's k-th row. Ids must be
row indices. Duplicate ids in one result count once. Also reports the largest difference between the
scores the engine returned and the true ones (a wrong score with right ids is a bug too), and for misses
how far outside the tolerance they fall (a miss within float32 rounding of the k-th score is a near-tie
decided by float32 arithmetic, not a wrong result).
"""

import argparse
import json

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("hits")
    ap.add_argument("base")
    ap.add_argument("queries")
    ap.add_argument("gt")
    ap.add_argument("--metric", choices=["cosine", "l2"], required=True)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--tol", type=float, default=1e-6)
    a = ap.parse_args()

    X = np.load(a.base, mmap_mode="r")
    Q = np.load(a.queries).astype(np.float64)
    gt = np.load(a.gt)
    k = a.k
    with open(a.hits) as f:
        hits = [json.loads(line) for line in f]
    nq = len(hits)
    assert nq <= len(Q), (nq, len(Q))

    def true_scores(ids, q):
        V = np.asarray(X[np.asarray(ids, dtype=np.int64)], dtype=np.float64)
        if a.metric == "cosine":
            return V @ q / (np.linalg.norm(V, axis=1) * np.linalg.norm(q))
        diff = V - q
        return np.sqrt(np.einsum("ij,ij->i", diff, diff))

    found = 0
    short = 0
    bad_ids = 0
    max_score_err = 0.0
    misses = []  # (query, id, margin outside tolerance)
    for qi, h in enumerate(hits):
        q = Q[qi]
        kth = true_scores(gt[qi, :k], q)
        kth = kth.min() if a.metric == "cosine" else kth.max()
        ids = h["ids"]
        if len(ids) < k:
            short += 1
        seen = set()
        valid = []
        for i in ids[:k]:
            if not isinstance(i, int) or i < 0 or i >= X.shape[0]:
                bad_ids += 1
            elif i not in seen:
                seen.add(i)
                valid.append(i)
        if not valid:
            continue
        ts = true_scores(valid, q)
        returned = np.asarray(h["scores"][: len(ids)], dtype=np.float64)
        pos = {i: j for j, i in enumerate(ids[:k])}
        errs = np.abs(ts - returned[[pos[i] for i in valid]])
        max_score_err = max(max_score_err, float(errs.max()))
        for i, s in zip(valid, ts):
            ok = s >= kth - a.tol if a.metric == "cosine" else s <= kth + a.tol
            if ok:
                found += 1
            else:
                misses.append((qi, i, float(abs(s - kth))))

    print(json.dumps({
        "recall": found / (nq * k), "queries": nq, "k": k, "tol": a.tol, "misses": len(misses),
        "short_results": short, "bad_ids": bad_ids, "max_score_error": max_score_err,
        "worst_miss_margin": max((m[2] for m in misses), default=0.0),
        "first_misses": misses[:5],
    }))


if __name__ == "__main__":
    main()
