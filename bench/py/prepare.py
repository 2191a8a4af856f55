"""Prepares (and caches) the benchmark datasets under bench/data/.

    prepare.py debian SRC_DIR OUT_DIR
        From ../shared/data/debian-minilm-20k: ids.txt (row index 0..n-1, one per line, so Sextant's ids
        equal the ground truth's row indices) and full.jsonl (the same records as JSON Lines with the
        vector inline, for the JSON Lines import rate).

    prepare.py synth OUT_DIR [--n 1000000] [--dim 128] [--queries 1000] [--clusters 1000] [--seed 20261121]
                             [--metric l2|cosine] [--no-records] [--jsonl]
        A mixture of Gaussian clusters (float32), queries from the same mixture, exact L2 ground truth by
        chunked brute force (float32 matrix products to pick 256 candidates per query, then re-ranked in
        float64), a records file of small metadata, and optionally (--jsonl) full.jsonl.
        With --metric cosine every base and query row is L2-normalized (float32) and the ground truth is
        by cosine (gt_cosine_top100.i32.npy, best first, + its float64 scores), the same way.

Everything is skipped when it already exists with the same parameters (params.json). Not a benchmark:
this may use every core.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

VECTOR_FORMAT = "%.9g"  # 9 significant digits: every float32 round-trips exactly


def log(msg):
    print(f"[prepare] {msg}", file=sys.stderr, flush=True)


def write_atomic_text(path, lines_iter):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for chunk in lines_iter:
            f.write(chunk)
    os.replace(tmp, path)


def vector_lines(X, chunk=20000):
    """Yields, per chunk of rows, the list of vectors formatted as JSON arrays' insides."""
    fmt = ",".join([VECTOR_FORMAT] * X.shape[1])
    for s in range(0, X.shape[0], chunk):
        yield [fmt % tuple(r) for r in X[s : s + chunk].tolist()]


def prepare_debian(src, out):
    os.makedirs(out, exist_ok=True)
    base = np.load(os.path.join(src, "base.f32.npy"), mmap_mode="r")
    n = base.shape[0]
    ids_path = os.path.join(out, "ids.txt")
    if not os.path.exists(ids_path):
        write_atomic_text(ids_path, ("".join(f"{i}\n" for i in range(n)),))
        log(f"wrote {ids_path}")
    jsonl_path = os.path.join(out, "full.jsonl")
    if not os.path.exists(jsonl_path):
        t = time.time()
        with open(os.path.join(src, "records.jsonl"), encoding="utf-8") as f:
            records = [json.loads(line) for line in f]
        assert len(records) == n, (len(records), n)

        def gen():
            row = 0
            for vecs in vector_lines(np.asarray(base)):
                buf = []
                for v in vecs:
                    r = records[row]
                    buf.append(
                        '{"id":%d,"vector":[%s],"metadata":%s,"document":%s}\n'
                        % (row, v, json.dumps(r["metadata"], ensure_ascii=False), json.dumps(r["document"], ensure_ascii=False))
                    )
                    row += 1
                yield "".join(buf)

        write_atomic_text(jsonl_path, gen())
        log(f"wrote {jsonl_path} ({os.path.getsize(jsonl_path) / 1e6:.1f} MB) in {time.time() - t:.1f}s")


def normalize_rows(A):
    """L2-normalizes float32 rows in place (float64 norms)."""
    norms = np.sqrt(np.einsum("ij,ij->i", A.astype(np.float64), A.astype(np.float64)))
    A /= np.maximum(norms, 1e-30).astype(np.float32)[:, None]
    return A


def prepare_synth(out, n, dim, nq, clusters, seed, sigma, jsonl, metric="l2", records=True):
    os.makedirs(out, exist_ok=True)
    cosine = metric == "cosine"
    params = {"n": n, "dim": dim, "queries": nq, "clusters": clusters, "seed": seed, "sigma": sigma,
              "centers": "N(0,1)", "gt": "L2, exact, top-100", "version": 1}
    if cosine:  # the L2 sets keep their original params (and so their cache)
        params.update({"gt": "cosine, exact, top-100", "normalized": True})
    params_path = os.path.join(out, "params.json")
    gt_name = "gt_cosine_top100" if cosine else "gt_l2_top100"
    paths = {k: os.path.join(out, v) for k, v in {
        "base": "base.f32.npy", "queries": "queries.f32.npy", "gt": gt_name + ".i32.npy",
        "gt_dist": gt_name + ("_scores.f64.npy" if cosine else "_dist.f64.npy"), "records": "records.jsonl",
        "jsonl": "full.jsonl"}.items()}
    fresh = os.path.exists(params_path) and json.load(open(params_path)) == params
    if not fresh:
        for p in list(paths.values()) + [params_path]:
            if os.path.exists(p):
                os.remove(p)

    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, dim), dtype=np.float32)
    labels = rng.integers(clusters, size=n)
    if not os.path.exists(paths["base"]):
        t = time.time()
        X = np.empty((n, dim), dtype=np.float32)
        step = 100_000
        for s in range(0, n, step):
            e = min(n, s + step)
            X[s:e] = centers[labels[s:e]] + sigma * rng.standard_normal((e - s, dim), dtype=np.float32)
            if cosine:
                normalize_rows(X[s:e])
        np.save(paths["base"] + ".tmp.npy", X)
        os.replace(paths["base"] + ".tmp.npy", paths["base"])
        log(f"wrote {paths['base']} ({n} x {dim}) in {time.time() - t:.1f}s")
    X = np.load(paths["base"])
    qrng = np.random.default_rng(seed + 1)
    if not os.path.exists(paths["queries"]):
        ql = qrng.integers(clusters, size=nq)
        Q = (centers[ql] + sigma * qrng.standard_normal((nq, dim), dtype=np.float32)).astype(np.float32)
        if cosine:
            normalize_rows(Q)
        np.save(paths["queries"] + ".tmp.npy", Q)
        os.replace(paths["queries"] + ".tmp.npy", paths["queries"])
    Q = np.load(paths["queries"])

    if cosine and not os.path.exists(paths["gt"]):
        cosine_ground_truth(X, Q, paths)
    if not os.path.exists(paths["gt"]):
        t = time.time()
        K, CAND = 100, 256
        xn = np.einsum("ij,ij->i", X, X)
        best_d = np.full((nq, CAND), np.inf, dtype=np.float32)
        best_i = np.zeros((nq, CAND), dtype=np.int64)
        step = 131072
        for s in range(0, n, step):
            e = min(n, s + step)
            d = Q @ X[s:e].T  # nq x chunk
            d *= -2
            d += xn[None, s:e]
            part = np.argpartition(d, CAND - 1, axis=1)[:, :CAND] if e - s > CAND else np.tile(np.arange(e - s), (nq, 1))
            cd = np.take_along_axis(d, part, axis=1)
            allv = np.concatenate([best_d, cd], axis=1)
            alli = np.concatenate([best_i, part + s], axis=1)
            keep = np.argpartition(allv, CAND - 1, axis=1)[:, :CAND]
            best_d = np.take_along_axis(allv, keep, axis=1)
            best_i = np.take_along_axis(alli, keep, axis=1)
        # Exact re-rank in float64.
        gt = np.empty((nq, K), dtype=np.int32)
        gd = np.empty((nq, K), dtype=np.float64)
        for qi in range(nq):
            cand = best_i[qi]
            diff = X[cand].astype(np.float64) - Q[qi].astype(np.float64)
            dist = np.sqrt(np.einsum("ij,ij->i", diff, diff))
            order = np.lexsort((cand, dist))[:K]
            gt[qi] = cand[order]
            gd[qi] = dist[order]
        np.save(paths["gt_dist"] + ".tmp.npy", gd)
        os.replace(paths["gt_dist"] + ".tmp.npy", paths["gt_dist"])
        np.save(paths["gt"] + ".tmp.npy", gt)
        os.replace(paths["gt"] + ".tmp.npy", paths["gt"])
        log(f"wrote exact L2 ground truth for {nq} queries in {time.time() - t:.1f}s")

    if records and not os.path.exists(paths["records"]):
        # Small metadata, no id (ids default to the row index 0..n-1), no document.
        groups = [f"g{i:02d}" for i in range(50)]

        def gen():
            step = 100_000
            for s in range(0, n, step):
                e = min(n, s + step)
                yield "".join(
                    '{"metadata":{"cluster":%d,"group":"%s","rank":%d,"even":%s}}\n'
                    % (labels[i], groups[i % 50], i % 1000, "true" if i % 2 == 0 else "false")
                    for i in range(s, e))

        write_atomic_text(paths["records"], gen())
        log(f"wrote {paths['records']}")

    if jsonl and not os.path.exists(paths["jsonl"]):
        t = time.time()

        def gen():
            row = 0
            groups = [f"g{i:02d}" for i in range(50)]
            for vecs in vector_lines(X):
                buf = []
                for v in vecs:
                    buf.append('{"id":%d,"vector":[%s],"metadata":{"cluster":%d,"group":"%s","rank":%d,"even":%s}}\n'
                               % (row, v, labels[row], groups[row % 50], row % 1000, "true" if row % 2 == 0 else "false"))
                    row += 1
                yield "".join(buf)

        write_atomic_text(paths["jsonl"], gen())
        log(f"wrote {paths['jsonl']} ({os.path.getsize(paths['jsonl']) / 1e9:.2f} GB) in {time.time() - t:.1f}s")

    with open(params_path, "w") as f:
        json.dump(params, f)


def cosine_ground_truth(X, Q, paths, K=100, CAND=256):
    """Exact top-K by cosine: float32 products pick CAND candidates per query, float64 re-ranks them."""
    t = time.time()
    n, nq = X.shape[0], Q.shape[0]
    best_s = np.full((nq, CAND), -np.inf, dtype=np.float32)
    best_i = np.zeros((nq, CAND), dtype=np.int64)
    step = 65536
    for s in range(0, n, step):
        e = min(n, s + step)
        sc = Q @ X[s:e].T  # nq x chunk, higher is better
        part = np.argpartition(-sc, CAND - 1, axis=1)[:, :CAND] if e - s > CAND else np.tile(np.arange(e - s), (nq, 1))
        cs = np.take_along_axis(sc, part, axis=1)
        alls = np.concatenate([best_s, cs], axis=1)
        alli = np.concatenate([best_i, part + s], axis=1)
        keep = np.argpartition(-alls, CAND - 1, axis=1)[:, :CAND]
        best_s = np.take_along_axis(alls, keep, axis=1)
        best_i = np.take_along_axis(alli, keep, axis=1)
    gt = np.empty((nq, K), dtype=np.int32)
    gs = np.empty((nq, K), dtype=np.float64)
    for qi in range(nq):
        cand = best_i[qi]
        V = X[cand].astype(np.float64)
        q = Q[qi].astype(np.float64)
        cos = V @ q / (np.linalg.norm(V, axis=1) * np.linalg.norm(q))
        order = np.lexsort((cand, -cos))[:K]
        gt[qi] = cand[order]
        gs[qi] = cos[order]
    np.save(paths["gt_dist"] + ".tmp.npy", gs)
    os.replace(paths["gt_dist"] + ".tmp.npy", paths["gt_dist"])
    np.save(paths["gt"] + ".tmp.npy", gt)
    os.replace(paths["gt"] + ".tmp.npy", paths["gt"])
    log(f"wrote exact cosine ground truth for {nq} queries in {time.time() - t:.1f}s")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("debian")
    d.add_argument("src")
    d.add_argument("out")
    s = sub.add_parser("synth")
    s.add_argument("out")
    s.add_argument("--n", type=int, default=1_000_000)
    s.add_argument("--dim", type=int, default=128)
    s.add_argument("--queries", type=int, default=1000)
    s.add_argument("--clusters", type=int, default=1000)
    s.add_argument("--seed", type=int, default=20261121)
    s.add_argument("--sigma", type=float, default=0.5)
    s.add_argument("--jsonl", action="store_true")
    s.add_argument("--metric", choices=["l2", "cosine"], default="l2")
    s.add_argument("--no-records", action="store_true", help="skip records.jsonl (the ANN benchmark needs none)")
    a = ap.parse_args()
    if a.cmd == "debian":
        prepare_debian(a.src, a.out)
    else:
        prepare_synth(a.out, a.n, a.dim, a.queries, a.clusters, a.seed, a.sigma, a.jsonl, a.metric, not a.no_records)


if __name__ == "__main__":
    main()
