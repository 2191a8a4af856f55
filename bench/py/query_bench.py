"""Issue 4's benchmark: metadata-filtered vector search and BM25 full-text search, side by side with peers.

Called by bench/run_query.sh (which makes the venv, installs bench/requirements-ann.txt and builds the
binaries); run from the repository root:

    bench/.venv/bin/python bench/py/query_bench.py [--no-doc] [--rounds N] [--max-queries N] [--reuse]
                                                   [--keep] [--from-results FILE]

Data: the shared debian-minilm-20k set (20,000 × 384, normalized, cosine; 500 queries with a section and a
one-line text). Every record gets an integer metadata field `bucket` = a fixed pseudo-random permutation of
the rows modulo 1,000 (seed 20261121), so `bucket < 500 / 100 / 10 / 1` passes exactly 50 / 10 / 1 / 0.1 %
of the rows; record ids are the row numbers, the package name moves to metadata `package`.

Filtered search (k = 10, ef 64, one thread, one query at a time for Sextant):
  - Sextant (`sextant-bench filtered`): `search(q, limit: 10, filter: f, ef: 64)` with payload indexes on
    `bucket` (integer) and `section` (keyword); the planner's choice per query comes from an untimed
    `searchExplained` pass;
  - hnswlib 0.8.0, post-filtering: the same vectors (M = 16, efConstruction = 200, ip space), query
    k' = ceil(10 / selectivity) (capped at n) with ef = max(64, k'), keep the allowed ids, top 10;
  - hnswlib 0.8.0 with its filter callback: `knn_query(Q, k=10, filter=callable)` at ef 64 (a Python
    callable, called for every candidate the search visits);
  - the unfiltered reference at ef 64 for both (Sextant's filtered QPS should be ≥ 0.5× its unfiltered QPS).
  The filters: `bucket < 500 / 100 / 10 / 1`, and the real one, `section == the query's section`.
  Exact filtered ground truth in float64 numpy; recall@10 tie-aware (a hit if its true score is at least
  the 10th true allowed score − 1e-6; a query with fewer than 10 allowed rows needs all of them).
  Correctness: ids that fail the filter, short results, wrong scores are listed.

BM25: the 20,000 documents in Sextant (documents imported with the records) and in an SQLite FTS5 table
(Python's sqlite3); queries = the 500 query texts. FTS5: the words (lowercased runs of letters and digits)
quoted and OR-ed, `SELECT rowid FROM fts WHERE fts MATCH ? ORDER BY bm25(fts) LIMIT 10`; Sextant
(`sextant-bench text`): `search(text: line, limit: 10)` with the same lines. QPS of both and the overlap of
the top-10 id sets (informational: idf, tokenizers and tie-breaking differ).

Every measurement: warm-up, then passes over all queries (at least 3 and at least 0.5 s), QPS = the median
pass; `rounds` rounds (default 3) with Sextant and the peers alternating; the reported QPS is the median
round. Results go to bench/results/query-STAMP/results.json; a dated section is appended to
Docs/Benchmarks.md. Benchmarks are not tests: nothing here fails on a figure.
"""

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import sqlite3  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from common import du_bytes, last_json, median  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
os.chdir(ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench", "py"))

PY = "bench/.venv/bin/python"
SEXTANT = ".build-bench/release/sextant"
BENCH = ".build-bench-pkg/release/sextant-bench"
SHARED = "../shared/data/debian-minilm-20k"
WORK = "bench/data/query"
DOC = "Docs/Benchmarks.md"
SEED = 20261121
K, EF, M, EFC = 10, 64, 16, 200
COLLECTION = "bench"
TOL = 1e-6
REPEAT, MIN_TIME, WARMUP = 3, 0.5, 5

# (key, label, bucket threshold or None for the section filter)
FILTER_SETS = [
    ("bucket-lt500", "bucket < 500 (50 %)", 500),
    ("bucket-lt100", "bucket < 100 (10 %)", 100),
    ("bucket-lt10", "bucket < 10 (1 %)", 10),
    ("bucket-lt1", "bucket < 1 (0.1 %)", 1),
    ("section", "section == query's section", None),
]

COMMANDS = []


def log(msg):
    print(f"[query] {msg}", file=sys.stderr, flush=True)


def run(cmd, *, record=True):
    if record:
        COMMANDS.append(" ".join(cmd))
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stderr[-4000:])
        raise RuntimeError(f"command failed ({p.returncode}): {' '.join(cmd)}")
    return p.stdout, p.stderr








def words(text):
    """Lowercased runs of letters and digits (what both engines' default tokenizers split on)."""
    out, seen = [], set()
    for w in re.findall(r"[^\W_]+", text.lower()):
        if w not in seen:
            seen.add(w)
            out.append(w)
    return out


# ---------------------------------------------------------------- data

def prepare(np, nq_max):
    """Writes the import records, the filter files and the text queries under WORK; returns the dataset."""
    os.makedirs(WORK, exist_ok=True)
    X = np.load(f"{SHARED}/base.f32.npy")
    Q = np.load(f"{SHARED}/queries.f32.npy")
    n = X.shape[0]
    with open(f"{SHARED}/queries.jsonl") as f:
        qmeta = [json.loads(line) for line in f]
    nq = min(len(Q), len(qmeta), nq_max or len(Q))
    Q, qmeta = Q[:nq], qmeta[:nq]
    bucket = np.random.default_rng(SEED).permutation(n) % 1000

    records = f"{WORK}/records.jsonl"
    sections = []
    with open(f"{SHARED}/records.jsonl") as src, open(records + ".tmp", "w") as dst:
        for i, line in enumerate(src):
            r = json.loads(line)
            md = dict(r.get("metadata") or {})
            md["package"] = r["id"]
            md["bucket"] = int(bucket[i])
            sections.append(md.get("section"))
            dst.write(json.dumps({"id": i, "document": r.get("document"), "metadata": md}) + "\n")
    os.replace(records + ".tmp", records)
    assert len(sections) == n, (len(sections), n)
    documents = []
    with open(f"{SHARED}/records.jsonl") as src:
        for line in src:
            documents.append(json.loads(line).get("document") or "")

    qpath = f"{WORK}/queries.f32.npy"
    np.save(qpath, np.ascontiguousarray(Q, dtype=np.float32))
    files = {}
    for key, _, thr in FILTER_SETS:
        path = f"{WORK}/filters-{key}.jsonl"
        with open(path, "w") as f:
            for qi in range(nq):
                if thr is not None:
                    flt = {"must": [{"key": "bucket", "range": {"lt": thr}}]}
                else:
                    flt = {"must": [{"key": "section", "match": {"value": qmeta[qi]["section"]}}]}
                f.write(json.dumps(flt) + "\n")
        files[key] = path
    files["none"] = f"{WORK}/filters-none.jsonl"
    with open(files["none"], "w") as f:
        f.write("null\n" * nq)
    texts = [" ".join(q["text"].split()) for q in qmeta]
    tpath = f"{WORK}/queries.txt"
    with open(tpath, "w") as f:
        f.write("".join(t + "\n" for t in texts))
    return {"X": X, "Q": Q, "n": n, "nq": nq, "bucket": bucket, "sections": sections, "qsections": [q["section"] for q in qmeta],
            "records": records, "queries": qpath, "filters": files, "texts": texts, "text_file": tpath, "documents": documents}


def allowed_masks(np, ds):
    """Per filter set: (row mask [n] shared by every query, or per-query masks [nq, n])."""
    out = {"none": np.ones(ds["n"], dtype=bool)}
    for key, _, thr in FILTER_SETS:
        if thr is not None:
            out[key] = ds["bucket"] < thr
        else:
            names = sorted(set(ds["sections"]) | set(ds["qsections"]))
            code = {s: i for i, s in enumerate(names)}
            rows = np.array([code[s] for s in ds["sections"]])
            qs = np.array([code[s] for s in ds["qsections"]])
            out[key] = rows[None, :] == qs[:, None]
    return out


def query_mask(mask, qi):
    return mask if mask.ndim == 1 else mask[qi]


def ground_truth(np, S, mask):
    """Exact filtered top-k: per query the allowed count, the k-th true score (or the lowest allowed score
    when fewer than k pass) and the ids."""
    nq, n = S.shape
    out = []
    for qi in range(nq):
        m = query_mask(mask, qi)
        allowed = np.flatnonzero(m)
        if len(allowed) == 0:
            out.append({"allowed": 0, "kth": None, "ids": []})
            continue
        s = S[qi, allowed]
        kk = min(K, len(allowed))
        top = np.argpartition(-s, kk - 1)[:kk]
        top = top[np.argsort(-s[top], kind="stable")]
        out.append({"allowed": int(len(allowed)), "kth": float(s[top[-1]]), "ids": allowed[top].tolist()})
    return out


def score_hits(np, S, mask, gt, hits):
    """Tie-aware recall@k of hits [(ids, scores)] against the filtered ground truth, with the checks."""
    found = need = short = violations = dup = 0
    max_err = 0.0
    misses = []
    for qi, (ids, scores) in enumerate(hits):
        g = gt[qi]
        m = query_mask(mask, qi)
        want = min(K, g["allowed"])
        need += want
        if len(ids) < want:
            short += 1
        seen = set()
        for i, sc in zip(ids[:K], list(scores[:K]) + [None] * K):
            i = int(i)
            if i < 0 or i >= len(m) or not m[i]:
                violations += 1
                continue
            if i in seen:
                dup += 1
                continue
            seen.add(i)
            true = float(S[qi, i])
            if sc is not None:
                max_err = max(max_err, abs(true - float(sc)))
            if true >= g["kth"] - TOL:
                found += 1
            else:
                misses.append((qi, i, g["kth"] - true))
    return {"recall": found / need if need else None, "queries": len(hits), "needed": need, "found": found,
            "short_results": short, "filter_violations": violations, "duplicates": dup,
            "max_score_error": max_err, "misses": len(misses), "first_misses": misses[:5]}


def read_hits(path):
    with open(path) as f:
        rows = [json.loads(line) for line in f]
    return [(r["ids"], r["scores"]) for r in rows]


# ---------------------------------------------------------------- Sextant

def build_sextant(ds, path):
    if os.path.exists(path):
        shutil.rmtree(path)
    t = {}
    t0 = time.perf_counter()
    run([SEXTANT, "create", COLLECTION, "--dim", "384", "--metric", "cosine", "--db", path])
    t1 = time.perf_counter()
    run([SEXTANT, "import", COLLECTION, f"{SHARED}/base.f32.npy", "--records", ds["records"], "--batch", "10000", "--db", path])
    t2 = time.perf_counter()
    run([SEXTANT, "index", "create", COLLECTION, "bucket", "--type", "integer", "--db", path])
    run([SEXTANT, "index", "create", COLLECTION, "section", "--type", "keyword", "--db", path])
    t3 = time.perf_counter()
    out, _ = run([SEXTANT, "info", COLLECTION, "--db", path])
    t["create_s"], t["import_s"], t["payload_indexes_s"] = t1 - t0, t2 - t1, t3 - t2
    t["info"] = last_json(out) if out.strip().startswith("{") else out.strip()
    t["bytes_on_disk"] = du_bytes(path)
    return t


def sextant_filtered(db, ds, key, out):
    cmd = [BENCH, "filtered", db, COLLECTION, ds["queries"], "--filters", ds["filters"][key], "--k", str(K), "--ef", str(EF),
           "--repeat", str(REPEAT), "--min-time", str(MIN_TIME), "--warmup", str(WARMUP)]
    if out:
        cmd += ["--out", out]
    stdout, _ = run(cmd, record=bool(out))
    return last_json(stdout)


def sextant_text(db, ds, out):
    cmd = [BENCH, "text", db, COLLECTION, ds["text_file"], "--k", str(K), "--repeat", str(REPEAT), "--min-time", str(MIN_TIME),
           "--warmup", str(WARMUP)]
    if out:
        cmd += ["--out", out]
    stdout, _ = run(cmd, record=bool(out))
    return last_json(stdout)


# ---------------------------------------------------------------- peers

def timed(fn, nq):
    """Warm-up on a few queries, then passes (≥ REPEAT and ≥ MIN_TIME s, ≤ 50); fn(idx) -> hits."""
    import numpy as np
    fn(np.arange(min(WARMUP, nq)))
    idx = np.arange(nq)
    passes, first, total = [], None, 0.0
    while len(passes) < REPEAT or (total < MIN_TIME and len(passes) < 50):
        t = time.perf_counter()
        res = fn(idx)
        passes.append(time.perf_counter() - t)
        total += passes[-1]
        if first is None:
            first = res
    qps = [nq / p for p in passes]
    return {"qps": statistics.median(qps), "qps_runs": qps, "passes": len(passes)}, first


class HnswPeer:
    def __init__(self, np, ds, path, reuse):
        import hnswlib
        from importlib.metadata import version
        self.np, self.version = np, version("hnswlib")
        X = np.ascontiguousarray(ds["X"], dtype=np.float32)
        self.n = X.shape[0]
        self.index = hnswlib.Index(space="ip", dim=X.shape[1])
        if reuse and os.path.exists(path):
            self.index.load_index(path, max_elements=self.n)
            self.build_s = None
        else:
            self.index.init_index(max_elements=self.n, ef_construction=EFC, M=M, random_seed=100)
            t = time.perf_counter()
            self.index.add_items(X, np.arange(self.n), num_threads=2)
            self.build_s = time.perf_counter() - t
            self.index.save_index(path)
        self.index.set_num_threads(1)
        self.shrunk = {}  # (filter set, query) -> (k', the k' hnswlib could return)
        self.one_by_one = set()  # (filter set, k') groups that hnswlib cannot answer as a batch
        self.Q = np.ascontiguousarray(ds["Q"], dtype=np.float32)

    def _knn(self, Q, k, ef, flt=None):
        self.index.set_ef(ef)
        if flt is None:
            return self.index.knn_query(Q, k=k, num_threads=1)
        return self.index.knn_query(Q, k=k, num_threads=1, filter=flt)

    def unfiltered(self, idx):
        labels, d = self._knn(self.Q[idx], K, EF)
        return [(labels[j].tolist(), (1.0 - d[j]).tolist()) for j in range(len(idx))]

    def postfilter(self, mask, groups, idx, tag):
        """groups: k' -> query indices. Keeps the allowed ids among the k' nearest, in order."""
        np = self.np
        res = {}
        want = set(idx.tolist())
        for kp, qs in groups.items():
            qs = [q for q in qs if q in want]
            if not qs:
                continue
            batches = None
            if (tag, kp) not in self.one_by_one:
                try:
                    batches = [(qs, *self._knn(self.Q[qs], kp, max(EF, kp)))]
                except RuntimeError:
                    self.one_by_one.add((tag, kp))
            if batches is None:
                # hnswlib raises when a query cannot reach k' rows (k' near n): ask one query at a time,
                # 10 % fewer each try; the k' that worked is remembered for the next passes.
                batches = []
                for q in qs:
                    kk = self.shrunk.get((tag, q), (kp, kp))[1]
                    while True:
                        try:
                            batches.append(([q], *self._knn(self.Q[[q]], kk, max(EF, kk))))
                            break
                        except RuntimeError:
                            kk = max(1, int(kk * 0.9))
                    if kk != kp:
                        self.shrunk[(tag, q)] = (kp, kk)
            for bqs, labels, d in batches:
                labels = labels.astype(np.int64)
                ok = mask[labels] if mask.ndim == 1 else mask[np.array(bqs)[:, None], labels]
                for j, q in enumerate(bqs):
                    keep = np.flatnonzero(ok[j])[:K]
                    res[q] = (labels[j, keep].tolist(), (1.0 - d[j, keep]).tolist())
        return [res[q] for q in idx.tolist()]

    def callback(self, groups, idx):
        """groups: [(callable, query indices, allowed count)]; hnswlib's filter at ef 64."""
        res = {}
        want = set(idx.tolist())
        for fn, qs, allowed in groups:
            qs = [q for q in qs if q in want]
            if not qs or allowed == 0:
                for q in qs:
                    res[q] = ([], [])
                continue
            k = min(K, allowed)
            try:
                labels, d = self._knn(self.Q[qs], k, EF, fn)
                for j, q in enumerate(qs):
                    res[q] = (labels[j].tolist(), (1.0 - d[j]).tolist())
            except RuntimeError:
                # hnswlib raises when a query finds fewer than k allowed rows; ask one at a time, fewer each try.
                for q in qs:
                    res[q] = ([], [])
                    for kk in range(k, 0, -1):
                        try:
                            labels, d = self._knn(self.Q[[q]], kk, EF, fn)
                            res[q] = (labels[0].tolist(), (1.0 - d[0]).tolist())
                            break
                        except RuntimeError:
                            continue
        return [res[q] for q in idx.tolist()]


def postfilter_groups(mask, n):
    """k' = ceil(10 / selectivity) capped at n, per query (selectivity = the query's passing rows / n);
    returns k' -> the queries asking for it."""
    groups = {}
    for qi in range(mask.shape[0]):
        allowed = int(mask[qi].sum())
        kp = min(n, -(-K * n // allowed)) if allowed else n
        groups.setdefault(kp, []).append(qi)
    return groups


def callback_groups(np, mask, nq):
    if mask.ndim == 1:
        return [(mask.tolist().__getitem__, list(range(nq)), int(mask.sum()))]
    by_row = {}
    for qi in range(nq):
        key = mask[qi].tobytes()
        if key not in by_row:
            by_row[key] = (mask[qi].tolist().__getitem__, [], int(mask[qi].sum()))
        by_row[key][1].append(qi)
    return list(by_row.values())


# ---------------------------------------------------------------- FTS5

class FTS5Peer:
    SQL = "SELECT rowid FROM fts WHERE fts MATCH ? ORDER BY bm25(fts) LIMIT ?"

    def __init__(self, ds, path):
        if os.path.exists(path):
            os.remove(path)
        self.version = sqlite3.sqlite_version
        self.conn = sqlite3.connect(path)
        self.conn.execute("CREATE VIRTUAL TABLE fts USING fts5(doc)")
        t = time.perf_counter()
        with self.conn:
            self.conn.executemany("INSERT INTO fts(rowid, doc) VALUES (?, ?)", enumerate(ds["documents"]))
        self.build_s = time.perf_counter() - t
        self.bytes = os.path.getsize(path)
        self.queries = [" OR ".join(f'"{w}"' for w in words(t)) for t in ds["texts"]]

    def search(self, idx):
        cur = self.conn.cursor()
        out = []
        for qi in idx.tolist():
            q = self.queries[qi]
            rows = cur.execute(self.SQL, (q, K)).fetchall() if q else []
            out.append(([r[0] for r in rows], []))
        return out

    def timed_latency(self, nq):
        """Like timed(), one query per call, with per-query latencies."""
        import numpy as np
        self.search(np.arange(min(WARMUP, nq)))
        cur = self.conn.cursor()
        passes, lat, first, total = [], [], None, 0.0
        while len(passes) < REPEAT or (total < MIN_TIME and len(passes) < 50):
            hits = []
            t0 = time.perf_counter()
            for qi in range(nq):
                q = self.queries[qi]
                t = time.perf_counter()
                rows = cur.execute(self.SQL, (q, K)).fetchall() if q else []
                lat.append(time.perf_counter() - t)
                hits.append(([r[0] for r in rows], []))
            passes.append(time.perf_counter() - t0)
            total += passes[-1]
            if first is None:
                first = hits
        lat.sort()
        qps = [nq / p for p in passes]
        return {"qps": statistics.median(qps), "qps_runs": qps, "passes": len(passes),
                "p50_ms": lat[max(0, math.ceil(0.5 * len(lat)) - 1)] * 1000, "p99_ms": lat[max(0, math.ceil(0.99 * len(lat)) - 1)] * 1000}, first


def overlap(a_hits, b_hits):
    vals = []
    for (a, _), (b, _) in zip(a_hits, b_hits):
        a, b = set(a[:K]), set(b[:K])
        denom = min(K, max(len(a), len(b)))
        if denom:
            vals.append(len(a & b) / denom)
    return sum(vals) / len(vals) if vals else None


# ---------------------------------------------------------------- the run

def measure(args, resdir):
    import numpy as np
    log("preparing data")
    ds = prepare(np, args.max_queries)
    nq, n = ds["nq"], ds["n"]
    masks = allowed_masks(np, ds)
    Xn = ds["X"].astype(np.float64)
    Xn /= np.linalg.norm(Xn, axis=1, keepdims=True)
    Qn = ds["Q"].astype(np.float64)
    Qn /= np.linalg.norm(Qn, axis=1, keepdims=True)
    S = Qn @ Xn.T
    gts = {key: ground_truth(np, S, masks[key]) for key in ["none"] + [f[0] for f in FILTER_SETS]}

    db = f"{WORK}/sextant-db"
    if args.reuse and os.path.exists(db):
        log("reusing the Sextant database")
        build = {"reused": True}
    else:
        log("building the Sextant database (CLI: create, import, payload indexes)")
        build = build_sextant(ds, db)
        log(f"  import {build['import_s']:.1f}s, payload indexes {build['payload_indexes_s']:.1f}s")
    log("building the hnswlib index")
    hn = HnswPeer(np, ds, f"{WORK}/hnswlib.index", args.reuse)
    log("building the FTS5 table")
    fts = FTS5Peer(ds, f"{WORK}/fts.sqlite")
    COMMANDS.append(f"{PY} bench/py/query_bench.py  # hnswlib and SQLite FTS5 in-process, see the docstring")

    keys = ["none"] + [f[0] for f in FILTER_SETS]
    sx_runs = {k: [] for k in keys}
    pf_runs = {k: [] for k in keys if k != "none"}
    cb_runs = {k: [] for k in keys if k != "none"}
    hn_unf_runs = []
    sx_text_runs, fts_runs = [], []
    hits = {}
    pf_groups = {}
    for k in keys[1:]:
        m = masks[k]
        pf_groups[k] = postfilter_groups(np.broadcast_to(m, (nq, n)) if m.ndim == 1 else m, n)
    cb_groups = {k: callback_groups(np, masks[k], nq) for k in keys[1:]}

    for r in range(args.rounds):
        first = r == 0
        sextant_first = r % 2 == 0
        for key in keys:
            def sx():
                out = f"{resdir}/hits-sextant-{key}.jsonl" if first else None
                res = sextant_filtered(db, ds, key, out)
                sx_runs[key].append(res)
                if out:
                    hits[("sextant", key)] = read_hits(out)

            def peers():
                if key == "none":
                    t, h = timed(hn.unfiltered, nq)
                    hn_unf_runs.append(t)
                    if first:
                        hits[("hnswlib", key)] = h
                    return
                t, h = timed(lambda idx: hn.postfilter(masks[key], pf_groups[key], idx, key), nq)
                pf_runs[key].append(t)
                if first:
                    hits[("postfilter", key)] = h
                t, h = timed(lambda idx: hn.callback(cb_groups[key], idx), nq)
                cb_runs[key].append(t)
                if first:
                    hits[("callback", key)] = h

            for step in ((sx, peers) if sextant_first else (peers, sx)):
                step()
            line = f"round {r + 1} {key}: Sextant {sx_runs[key][-1]['qps']:,.0f} QPS"
            if key == "none":
                line += f", hnswlib {hn_unf_runs[-1]['qps']:,.0f}"
            else:
                line += f", post-filter {pf_runs[key][-1]['qps']:,.0f}, callback {cb_runs[key][-1]['qps']:,.0f}"
            log(line)

        def sxt():
            out = f"{resdir}/hits-sextant-text.jsonl" if first else None
            sx_text_runs.append(sextant_text(db, ds, out))
            if out:
                hits[("sextant", "text")] = read_hits(out)

        def ft():
            t, h = fts.timed_latency(nq)
            fts_runs.append(t)
            if first:
                hits[("fts5", "text")] = h

        for step in ((sxt, ft) if sextant_first else (ft, sxt)):
            step()
        log(f"round {r + 1} BM25: Sextant {sx_text_runs[-1]['qps']:,.0f} QPS, FTS5 {fts_runs[-1]['qps']:,.0f} QPS")

    def summary(runs, extra=None):
        s = {"qps": median([x["qps"] for x in runs]), "qps_rounds": [x["qps"] for x in runs]}
        for f in ("p50_ms", "p99_ms"):
            if runs and f in runs[0]:
                s[f] = median([x[f] for x in runs])
        if extra:
            s.update(extra)
        return s

    rows = []
    for key in keys:
        label = "none (unfiltered)" if key == "none" else next(f[1] for f in FILTER_SETS if f[0] == key)
        m = masks[key]
        allowed = m.sum(axis=-1)
        sel = float(np.mean(allowed)) / n
        sx0 = sx_runs[key][0]
        row = {"key": key, "label": label, "selectivity": sel, "allowed_mean": float(np.mean(allowed)),
               "allowed_min": int(np.min(allowed)), "allowed_max": int(np.max(allowed)),
               "sextant": summary(sx_runs[key], {
                   "recall": score_hits(np, S, m, gts[key], hits[("sextant", key)]),
                   "plan_strategies": sx0.get("plan_strategies"), "plan_routes": sx0.get("plan_routes"),
                   "plan_graph_widths": sx0.get("plan_graph_widths"), "candidates_mean": sx0.get("candidates_mean"),
                   "explained_vs_timed_differ": sx0.get("explained_vs_timed_differ"), "rounds": sx_runs[key]})}
        if key == "none":
            row["hnswlib"] = summary(hn_unf_runs, {"recall": score_hits(np, S, m, gts[key], hits[("hnswlib", key)])})
        else:
            row["postfilter"] = summary(pf_runs[key], {"recall": score_hits(np, S, m, gts[key], hits[("postfilter", key)]),
                                                       "k_prime": sorted(pf_groups[key]),
                                                       "k_prime_shrunk": sorted([q, kp, kk] for (tag, q), (kp, kk) in hn.shrunk.items() if tag == key)})
            row["callback"] = summary(cb_runs[key], {"recall": score_hits(np, S, m, gts[key], hits[("callback", key)])})
        rows.append(row)
    unf = rows[0]["sextant"]["qps"]
    for row in rows[1:]:
        q = row["sextant"]["qps"]
        row["vs_unfiltered"] = q / unf if unf else None
        row["vs_postfilter"] = q / row["postfilter"]["qps"] if row["postfilter"]["qps"] else None
        row["vs_callback"] = q / row["callback"]["qps"] if row["callback"]["qps"] else None

    sxh, fth = hits[("sextant", "text")], hits[("fts5", "text")]
    bm25 = {"sextant": summary(sx_text_runs, {"empty_results": sx_text_runs[0].get("empty_results"),
                                              "short_results": sx_text_runs[0].get("short_results"), "rounds": sx_text_runs}),
            "fts5": summary(fts_runs, {"build_s": fts.build_s, "bytes": fts.bytes, "version": fts.version,
                                       "short_results": sum(1 for ids, _ in fth if len(ids) < K)}),
            "overlap_at_10": overlap(sxh, fth),
            "top1_agree": sum(1 for (a, _), (b, _) in zip(sxh, fth) if a[:1] == b[:1] and a) / max(1, len(sxh)),
            "example_fts_query": fts.queries[0]}
    bm25["ratio"] = bm25["sextant"]["qps"] / bm25["fts5"]["qps"] if bm25["fts5"]["qps"] else None
    return {"rows": rows, "bm25": bm25, "build": build, "hnswlib_version": hn.version, "hnswlib_build_s": hn.build_s,
            "queries": nq, "n": n}


def problems_of(res):
    probs = []
    for row in res["rows"]:
        for who in ("sextant", "hnswlib", "postfilter", "callback"):
            if who not in row:
                continue
            r = row[who]["recall"]
            name = {"sextant": "Sextant", "hnswlib": "hnswlib", "postfilter": "hnswlib post-filter",
                    "callback": "hnswlib filter callback"}[who]
            if r["filter_violations"]:
                probs.append(f"{row['label']} / {name}: {r['filter_violations']} returned ids fail the filter")
            if r["short_results"] and who in ("sextant", "callback"):
                probs.append(f"{row['label']} / {name}: {r['short_results']} queries with fewer results than min(10, allowed rows)")
            if r["duplicates"]:
                probs.append(f"{row['label']} / {name}: {r['duplicates']} duplicate ids in results")
            if r["max_score_error"] > 1e-3:
                probs.append(f"{row['label']} / {name}: returned scores differ from the true ones by up to {r['max_score_error']:.3g}")
        sx = row["sextant"]
        if sx.get("explained_vs_timed_differ"):
            probs.append(f"{row['label']} / Sextant: searchExplained and search returned different ids for {sx['explained_vs_timed_differ']} queries")
        if sx["recall"]["recall"] is not None and sx["recall"]["recall"] < 0.9:
            probs.append(f"{row['label']} / Sextant: recall@10 only {sx['recall']['recall']:.3f}")
    b = res["bm25"]["sextant"]
    if b.get("empty_results"):
        probs.append(f"BM25 / Sextant: {b['empty_results']} queries with no result")
    return probs


# ---------------------------------------------------------------- report

def f_int(x):
    return "—" if x is None else f"{x:,.0f}"


def f_ratio(x):
    return "—" if x is None else f"{x:.2f}×"


def f_rec(r):
    return "—" if r is None or r.get("recall") is None else f"{r['recall']:.3f}"


def f_plan(sx):
    routes = sx.get("plan_routes") or {}
    widths = sx.get("plan_graph_widths") or {}
    parts = []
    for kind in ("graph", "exact", "skip"):
        if routes.get(kind):
            w = ""
            if kind == "graph" and widths:
                w = " (beam " + "/".join(sorted(widths, key=int)) + ")"
            parts.append(f"{kind}{w} {routes[kind]}")
    return ", ".join(parts) or "—"


def f_sel(row):
    if row["key"] == "none":
        return f"{row['allowed_mean']:,.0f} (100 %)"
    if row["allowed_min"] == row["allowed_max"]:
        return f"{row['allowed_mean']:,.0f} ({row['selectivity'] * 100:g} %)"
    return f"{row['allowed_min']:,}–{row['allowed_max']:,}, mean {row['allowed_mean']:,.0f} ({row['selectivity'] * 100:.1f} %)"


def filter_table(res):
    head = ["filter", "rows passing", "Sextant QPS (recall@10)", "p50 / p99 ms", "Sextant plan (queries)",
            "vs Sextant unfiltered (≥ 0.5×)", "hnswlib post-filter QPS (recall@10)", "Sextant vs post-filter",
            "hnswlib filter callback QPS (recall@10)", "Sextant vs callback"]
    L = ["| " + " | ".join(head) + " |", "|" + "|".join(["---", "---:", "---:", "---:", "---", "---:", "---:", "---:", "---:", "---:"]) + "|"]
    for row in res["rows"]:
        sx = row["sextant"]
        cells = [row["label"], f_sel(row), f"{f_int(sx['qps'])} ({f_rec(sx['recall'])})",
                 f"{sx.get('p50_ms', float('nan')):.3f} / {sx.get('p99_ms', float('nan')):.3f}", f_plan(sx)]
        if row["key"] == "none":
            h = row["hnswlib"]
            cells += ["1.00×", f"unfiltered, ef 64: {f_int(h['qps'])} ({f_rec(h['recall'])})", f_ratio(sx["qps"] / h["qps"]), "—", "—"]
        else:
            pf, cb = row["postfilter"], row["callback"]
            kp = pf.get("k_prime") or []
            kps = f"k′ {kp[0]:,}" if len(kp) == 1 else f"k′ {min(kp):,}–{max(kp):,}"
            unf_ok = row["vs_unfiltered"] is not None and row["vs_unfiltered"] >= 0.5
            cells += [f"{f_ratio(row['vs_unfiltered'])} {'yes' if unf_ok else '**no**'}",
                      f"{f_int(pf['qps'])} ({f_rec(pf['recall'])}; {kps})", f_ratio(row["vs_postfilter"]),
                      f"{f_int(cb['qps'])} ({f_rec(cb['recall'])})", f_ratio(row["vs_callback"])]
        L.append("| " + " | ".join(cells) + " |")
    return "\n".join(L)


def bm25_table(res):
    b = res["bm25"]
    sx, ft = b["sextant"], b["fts5"]
    L = ["| engine | QPS | p50 / p99 ms | vs FTS5 |", "|---|---:|---:|---:|",
         f"| Sextant BM25 (`search(text:limit:)`) | {f_int(sx['qps'])} | {sx['p50_ms']:.3f} / {sx['p99_ms']:.3f} | {f_ratio(b['ratio'])} |",
         f"| SQLite {ft['version']} FTS5, `bm25()`, words OR-ed | {f_int(ft['qps'])} | {ft['p50_ms']:.3f} / {ft['p99_ms']:.3f} | 1.00× |"]
    return "\n".join(L)


def notes(res):
    b, bd = res["bm25"], res["build"]
    lines = []
    if not bd.get("reused"):
        info = bd.get("info")
        segs = ""
        if isinstance(info, dict) and "segments" in info:
            states = {}
            for seg in info["segments"]:
                states[seg.get("index")] = states.get(seg.get("index"), 0) + 1
            segs = f"; {len(info['segments'])} segment(s) ({', '.join(f'{v} {k}' for k, v in states.items())})"
        lines.append(f"Sextant database: `sextant import` (npy + records, batches of 10,000, waits for the graph) "
                     f"{bd['import_s']:.1f} s, the two payload indexes {bd['payload_indexes_s']:.1f} s, "
                     f"{bd['bytes_on_disk'] / 1e6:.1f} MB on disk{segs}.")
    hb = f"{res['hnswlib_build_s']:.1f} s with 2 threads" if res["hnswlib_build_s"] else "reused"
    lines.append(f"hnswlib {res['hnswlib_version']} index: {hb}. FTS5 table: {b['fts5']['build_s']:.1f} s to insert "
                 f"the 20,000 documents, {b['fts5']['bytes'] / 1e6:.1f} MB.")
    for row in res["rows"]:
        shr = (row.get("postfilter") or {}).get("k_prime_shrunk") or []
        if shr:
            lines.append(f"{row['label']}: hnswlib post-filtering could not return k′ rows for {len(shr)} "
                         f"quer{'y' if len(shr) == 1 else 'ies'} (it raises when the graph search reaches fewer); "
                         + "; ".join(f"query {q}: k′ {kp:,} → {kk:,}" for q, kp, kk in shr[:5]) + ".")
    lines.append(f"BM25 result agreement (informational): the top-10 id sets overlap {b['overlap_at_10'] * 100:.0f} % on "
                 f"average, the first hit agrees on {b['top1_agree'] * 100:.0f} % of the queries; Sextant returned no "
                 f"hit for {b['sextant'].get('empty_results', 0)} queries, FTS5 fewer than 10 for {b['fts5']['short_results']}. "
                 f"Example FTS5 query: `{b['example_fts_query']}`.")
    return lines


def markdown_section(saved, invocation):
    res, machine = saved["results"], saved["machine"]
    L = [f"\n## {saved['date']} — issue 4, filtered search and BM25: `{invocation}`\n"]
    L.append(f"Machine: {machine['cpu']}, {machine['cores']} vCPUs{' with AVX-512' if machine['avx512'] else ''}, "
             f"{machine['memory']} RAM, Linux {machine['kernel']}; shared and noisy (1-min load average "
             f"{machine['loadavg_start']:.1f} at the start, {machine['loadavg_end']:.1f} at the end). {machine['swift']}; "
             f"Python {machine['python']}, numpy {machine['numpy']}; peers: hnswlib {res['hnswlib_version']} (PyPI), "
             f"SQLite {res['bm25']['fts5']['version']} FTS5 (Python's sqlite3). Sextant at commit {machine['commit']}"
             f"{' with uncommitted changes in Sources/' if machine['dirty'] else ''}.\n")
    L.append(f"Data: debian-minilm-20k (20,000 × 384, cosine), {res['queries']} queries; every record has metadata "
             f"`bucket` = a seeded permutation of the rows mod 1,000 (seed {SEED}), so `bucket < 500 / 100 / 10 / 1` "
             f"passes exactly 50 / 10 / 1 / 0.1 % of the rows; `section` is the record's real Debian section. "
             f"Sextant: payload indexes on `bucket` (integer) and `section` (keyword), `search(q, limit: 10, filter: f, ef: 64)` "
             f"one query at a time in one thread (`sextant-bench filtered`). hnswlib (M = 16, efConstruction = 200, ip): "
             f"post-filtering asks for k′ = ⌈10 / selectivity⌉ (capped at 20,000) with ef = max(64, k′) and keeps the "
             f"first 10 allowed ids; the filter callback is `knn_query(Q, k=10, filter=list.__getitem__)` at ef 64 (a "
             f"Python callable per visited candidate); both one thread, batch calls over the queries. k = 10; QPS the "
             f"median of {saved['rounds']} rounds (Sextant and hnswlib alternating; each round's figure is the median of "
             f"≥ 3 passes and ≥ 0.5 s); recall@10 tie-aware against the exact filtered top 10 (float64 numpy; a query "
             f"with fewer than 10 passing rows needs all of them). The plan column counts queries by the strategy "
             f"Sextant's planner chose (`searchExplained`, one segment here).\n")
    L.append(filter_table(res) + "\n")
    L.append("BM25, the 500 query texts (a package's one-line summary) over the 20,000 documents, k = 10, one thread, "
             "one query per call:\n")
    L.append(bm25_table(res) + "\n")
    for line in notes(res):
        L.append(line + "\n")
    probs = saved["problems"]
    L.append("Correctness checks (ids failing the filter, short results, duplicates, wrong scores, recall < 0.9, "
             "explained and timed searches disagreeing): " + ("none failed." if not probs else "") + "\n")
    for p in probs:
        L.append(f"- {p}")
    if probs:
        L.append("")
    L.append("Commands (paths relative to the repository root):\n")
    L.append("```")
    seen = set()
    for c in saved["commands"]:
        c = re.sub(r"bench/results/query-\d{8}-\d{6}/", "bench/results/RUN/", c)
        if c not in seen:
            seen.add(c)
            L.append(c)
    L.append("```\n")
    return "\n".join(L)


def print_report(saved):
    res = saved["results"]
    print("\nFiltered search, k = 10, ef 64, one thread")
    print(filter_table(res))
    print("\nBM25")
    print(bm25_table(res))
    for line in notes(res):
        print(line)
    for p in saved["problems"]:
        print(f"  PROBLEM: {p}")


def main():
    global REPEAT, MIN_TIME
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-doc", action="store_true", help="do not append to Docs/Benchmarks.md")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-queries", type=int, help="the first N queries only (a quick check)")
    ap.add_argument("--reuse", action="store_true", help="reuse the Sextant database and hnswlib index under bench/data/query/")
    ap.add_argument("--keep", action="store_true", help="keep bench/data/query/ (the databases) afterwards")
    ap.add_argument("--date", default=datetime.date.today().isoformat())
    ap.add_argument("--from-results", help="re-render a past results.json, measure nothing")
    args = ap.parse_args()
    argv = " ".join(sys.argv[1:])
    invocation = (f"bash bench/run_query.sh {argv}" if os.environ.get("SEXTANT_QUERY_VIA") == "run_query.sh"
                  else f"bench/.venv/bin/python bench/py/query_bench.py {argv}").strip()

    if args.from_results:
        with open(args.from_results) as f:
            saved = json.load(f)
        print_report(saved)
        print(markdown_section(saved, saved.get("invocation", invocation)))
        return

    sys.dont_write_bytecode = True
    from bench import machine_info  # noqa: E402  (bench/py/bench.py)
    os.chdir(ROOT)
    for tool in (SEXTANT, BENCH):
        if not os.access(tool, os.X_OK):
            sys.exit(f"query_bench.py: {tool} is missing; run bash bench/run_query.sh")
    start = time.time()
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    resdir = f"bench/results/query-{stamp}"
    os.makedirs(resdir, exist_ok=True)
    machine = machine_info()
    res = measure(args, resdir)
    machine["loadavg_end"] = os.getloadavg()[0]
    saved = {"date": args.date, "machine": machine, "rounds": args.rounds, "invocation": invocation,
             "results": res, "problems": problems_of(res), "commands": COMMANDS}
    with open(f"{resdir}/results.json", "w") as f:
        json.dump(saved, f, indent=1)
    print_report(saved)
    print(f"\nraw results: {resdir}/results.json; total {time.time() - start:.0f}s")
    if not args.no_doc:
        with open(DOC, "a") as f:
            f.write(markdown_section(saved, invocation))
        print(f"appended a section to {DOC}")
    if not args.keep and not args.reuse:
        for p in (f"{WORK}/sextant-db", f"{WORK}/hnswlib.index", f"{WORK}/fts.sqlite"):
            if os.path.isdir(p):
                shutil.rmtree(p, ignore_errors=True)
            elif os.path.exists(p):
                os.remove(p)


if __name__ == "__main__":
    main()
