"""The HNSW peers (hnswlib, faiss-cpu IndexHNSWFlat, usearch), one process per step, for bench/py/ann.py.

    ann_peer.py build LIB BASE.npy INDEX_FILE --metric ip|l2 [--m 16] [--efc 200] [--threads 2]
        Builds the index over every row of BASE (ids = row index) with THREADS threads, saves it to
        INDEX_FILE, prints {"build_s", "save_s", "index_bytes", ...}. The build time is the library's add
        call alone (loading the .npy and saving are outside it).

    ann_peer.py search LIB INDEX_FILE QUERIES.npy --metric ip|l2 --dim D --count N
                      [--ef-sweep 10,16,32,64,128,256] [--k 10] [--repeat 3] [--min-time 0.5] [--warmup 5]
                      [--out HITS_%d.jsonl]
        Loads the index (timed: "open_ms"), answers one query with ef 64 ("first_query_ms"), then for each
        ef: warm-up queries, passes over all queries with one thread (at least `repeat`, and more until
        `min-time` seconds), QPS = the median pass. Hits
        of the first pass go to OUT % ef, as {"ids": [...], "scores": [...]} per query, scores converted to
        what bench/py/recall.py checks: inner product (= cosine on normalized data) for ip, the Euclidean
        distance (not its square) for l2.

One thread for search, as BENCHMARKS.md says: OPENBLAS/OMP/MKL_NUM_THREADS=1 before numpy is imported,
hnswlib num_threads=1, faiss.omp_set_num_threads(1), usearch threads=1. Each library's batch call over the
whole query set is used (its per-call overhead is Python's, not the library's).
"""

import os

# One BLAS/OpenMP thread by default; the build sets its own threads per library (faiss through
# omp_set_num_threads, which overrides OMP_NUM_THREADS).
for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

LIBS = ("hnswlib", "faiss", "usearch")


def version(lib):
    if lib == "hnswlib":
        from importlib.metadata import version as v
        return v("hnswlib")
    if lib == "faiss":
        import faiss
        return faiss.__version__
    import usearch
    return usearch.VERSION if hasattr(usearch, "VERSION") else __import__("importlib.metadata").metadata.version("usearch")


# ---------------------------------------------------------------- build

def build(a):
    X = np.ascontiguousarray(np.load(a.base), dtype=np.float32)
    n, d = X.shape
    ids = np.arange(n, dtype=np.int64)
    if a.lib == "hnswlib":
        import hnswlib
        index = hnswlib.Index(space="ip" if a.metric == "ip" else "l2", dim=d)
        index.init_index(max_elements=n, ef_construction=a.efc, M=a.m, random_seed=100)
        t = time.perf_counter()
        index.add_items(X, ids, num_threads=a.threads)
        build_s = time.perf_counter() - t
        t = time.perf_counter()
        index.save_index(a.index)
        save_s = time.perf_counter() - t
        extra = {}
    elif a.lib == "faiss":
        import faiss
        faiss.omp_set_num_threads(a.threads)
        metric = faiss.METRIC_INNER_PRODUCT if a.metric == "ip" else faiss.METRIC_L2
        index = faiss.IndexHNSWFlat(d, a.m, metric)
        index.hnsw.efConstruction = a.efc
        t = time.perf_counter()
        index.add(X)
        build_s = time.perf_counter() - t
        t = time.perf_counter()
        faiss.write_index(index, a.index)
        save_s = time.perf_counter() - t
        extra = {"omp_max_threads": faiss.omp_get_max_threads()}
    else:
        from usearch.index import Index
        index = Index(ndim=d, metric="ip" if a.metric == "ip" else "l2sq", dtype="f32",
                      connectivity=a.m, expansion_add=a.efc, expansion_search=64)
        t = time.perf_counter()
        index.add(ids, X, threads=a.threads)
        build_s = time.perf_counter() - t
        t = time.perf_counter()
        index.save(a.index)
        save_s = time.perf_counter() - t
        extra = {"hardware_acceleration": getattr(index, "hardware_acceleration", None)}
    print(json.dumps({"lib": a.lib, "version": version(a.lib), "count": n, "dim": d, "m": a.m, "efc": a.efc,
                      "threads": a.threads, "build_s": build_s, "save_s": save_s,
                      "index_bytes": os.path.getsize(a.index), **extra}))


# ---------------------------------------------------------------- search

class Searcher:
    """Loads one library's index; search(Q, k, ef) -> (ids int64 [nq, k], scores float64 [nq, k])."""

    def __init__(self, lib, path, metric, dim, count):
        self.lib, self.metric = lib, metric
        if lib == "hnswlib":
            import hnswlib
            self.index = hnswlib.Index(space="ip" if metric == "ip" else "l2", dim=dim)
            self.index.load_index(path, max_elements=count)
            self.index.set_num_threads(1)
        elif lib == "faiss":
            import faiss
            faiss.omp_set_num_threads(1)
            self.index = faiss.read_index(path)
        else:
            from usearch.index import Index
            self.index = Index.restore(path, view=False)

    def search(self, Q, k, ef):
        if self.lib == "hnswlib":
            self.index.set_ef(ef)
            labels, dist = self.index.knn_query(Q, k=k, num_threads=1)
            ids = labels.astype(np.int64)
            d = dist.astype(np.float64)
            scores = 1.0 - d if self.metric == "ip" else np.sqrt(np.maximum(d, 0))
            return ids, scores, None
        if self.lib == "faiss":
            self.index.hnsw.efSearch = ef
            dist, labels = self.index.search(Q, k)
            d = dist.astype(np.float64)
            scores = d if self.metric == "ip" else np.sqrt(np.maximum(d, 0))
            return labels.astype(np.int64), scores, None
        self.index.expansion_search = ef
        m = self.index.search(Q, k, threads=1)
        if hasattr(m, "counts"):  # BatchMatches: [nq, k] with counts
            keys = np.asarray(m.keys).reshape(len(Q), -1).astype(np.int64)
            d = np.asarray(m.distances).reshape(len(Q), -1).astype(np.float64)
            counts = np.asarray(m.counts).reshape(-1)
        else:  # one query: Matches, as many as found
            keys = np.full((1, k), -1, dtype=np.int64)
            d = np.zeros((1, k), dtype=np.float64)
            c = len(m.keys)
            keys[0, :c], d[0, :c] = np.asarray(m.keys), np.asarray(m.distances)
            counts = np.array([c])
        scores = 1.0 - d if self.metric == "ip" else np.sqrt(np.maximum(d, 0))
        return keys, scores, counts


def write_hits(path, ids, scores, counts):
    with open(path, "w") as f:
        for qi in range(ids.shape[0]):
            n = ids.shape[1] if counts is None else int(counts[qi])
            row_ids = [int(i) for i in ids[qi, :n] if i >= 0]
            row_sc = [float(s) for i, s in zip(ids[qi, :n], scores[qi, :n]) if i >= 0]
            f.write(json.dumps({"ids": row_ids, "scores": row_sc}) + "\n")


def search(a):
    Q = np.ascontiguousarray(np.load(a.queries), dtype=np.float32)
    efs = [int(x) for x in a.ef_sweep.split(",")]
    t0 = time.perf_counter()
    s = Searcher(a.lib, a.index, a.metric, a.dim, a.count)
    t1 = time.perf_counter()
    s.search(Q[:1], a.k, 64)
    t2 = time.perf_counter()
    per_ef = []
    for ef in efs:
        for i in range(min(a.warmup, len(Q))):
            s.search(Q[i:i + 1], a.k, ef)
        passes = []
        first = None
        while len(passes) < max(1, a.repeat) or (sum(passes) < a.min_time and len(passes) < 50):
            t = time.perf_counter()
            res = s.search(Q, a.k, ef)
            passes.append(time.perf_counter() - t)
            if first is None:
                first = res
        if a.out:
            write_hits(a.out % ef, *first)
        qps = [len(Q) / x for x in passes]
        per_ef.append({"ef": ef, "qps": float(np.median(qps)), "qps_runs": qps})
    print(json.dumps({"lib": a.lib, "version": version(a.lib), "queries": len(Q), "k": a.k, "threads": 1,
                      "open_ms": (t1 - t0) * 1000, "first_query_ms": (t2 - t1) * 1000,
                      "open_plus_first_query_ms": (t2 - t0) * 1000, "per_ef": per_ef}))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("lib", choices=LIBS)
    b.add_argument("base")
    b.add_argument("index")
    b.add_argument("--metric", choices=["ip", "l2"], required=True)
    b.add_argument("--m", type=int, default=16)
    b.add_argument("--efc", type=int, default=200)
    b.add_argument("--threads", type=int, default=2)
    s = sub.add_parser("search")
    s.add_argument("lib", choices=LIBS)
    s.add_argument("index")
    s.add_argument("queries")
    s.add_argument("--metric", choices=["ip", "l2"], required=True)
    s.add_argument("--dim", type=int, required=True)
    s.add_argument("--count", type=int, required=True)
    s.add_argument("--ef-sweep", default="10,16,32,64,128,256")
    s.add_argument("--k", type=int, default=10)
    s.add_argument("--repeat", type=int, default=3)
    s.add_argument("--min-time", type=float, default=0.5, help="more passes until this many seconds (at most 50)")
    s.add_argument("--warmup", type=int, default=5)
    s.add_argument("--out")
    a = ap.parse_args()
    build(a) if a.cmd == "build" else search(a)


if __name__ == "__main__":
    main()
