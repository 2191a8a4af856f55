"""The exact-search peer: numpy `X @ q` + argpartition, one query at a time, ONE thread.

    numpy_exact.py BASE.npy QUERIES.npy --metric ip|l2 [--k 10] [--repeat 3] [--warmup 5] [--out HITS.jsonl]

ip (cosine on L2-normalized data = inner product): s = X @ q; the top k of argpartition, sorted.
l2: what a fair numpy user writes — squared norms ‖x‖² precomputed once (not timed), then per query
    d = ‖x‖² − 2·(X @ q) (in place; ‖q‖² is the same for every row so it is left out), argpartition, sort.
The base array is loaded fully into memory (np.load), as Sextant's rows are mapped and resident.
Prints one JSON object; --out writes {"ids": [...], "scores": [...]} per query from the first pass
(scores: inner product, or the true L2 distance sqrt(d + ‖q‖²)).
"""

import os

# Must be set before numpy is imported (BENCHMARKS.md): one BLAS thread.
for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("queries")
    ap.add_argument("--metric", choices=["ip", "l2"], required=True)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--out")
    a = ap.parse_args()

    X = np.ascontiguousarray(np.load(a.base), dtype=np.float32)
    Q = np.ascontiguousarray(np.load(a.queries), dtype=np.float32)
    n, k = X.shape[0], a.k
    norms = np.einsum("ij,ij->i", X, X) if a.metric == "l2" else None

    if a.metric == "ip":
        def search(q):
            s = X @ q
            idx = np.argpartition(s, n - k)[n - k:]
            return idx[np.argsort(-s[idx], kind="stable")], s
    else:
        def search(q):
            d = X @ q
            d *= -2
            d += norms
            idx = np.argpartition(d, k - 1)[:k]
            return idx[np.argsort(d[idx], kind="stable")], d

    for q in Q[: a.warmup]:
        search(q)

    passes, lat, first = [], [], []
    for p in range(max(1, a.repeat)):
        start = time.perf_counter()
        for q in Q:
            t = time.perf_counter()
            idx, s = search(q)
            lat.append(time.perf_counter() - t)
            if p == 0:
                first.append((idx, s[idx].astype(np.float64), q))
        passes.append(time.perf_counter() - start)

    if a.out:
        with open(a.out, "w") as f:
            for idx, sc, q in first:
                if a.metric == "l2":
                    sc = np.sqrt(np.maximum(0, sc + float(np.dot(q.astype(np.float64), q.astype(np.float64)))))
                f.write(json.dumps({"ids": [int(i) for i in idx], "scores": [float(x) for x in sc]}) + "\n")

    qps = [len(Q) / t for t in passes]
    lat_ms = np.array(lat) * 1000
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # noqa: BLE001
        blas = "unknown"
    print(json.dumps({
        "queries": len(Q), "k": k, "repeat": len(passes), "count": n, "threads": 1,
        "qps": float(np.median(qps)), "qps_runs": qps,
        "mean_ms": float(lat_ms.mean()), "p50_ms": float(np.percentile(lat_ms, 50)),
        "p99_ms": float(np.percentile(lat_ms, 99)),
        "numpy": np.__version__, "blas": blas,
        "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
    }))


if __name__ == "__main__":
    main()
