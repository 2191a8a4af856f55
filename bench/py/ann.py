"""Issue 3's benchmark: Sextant's HNSW side by side with hnswlib, faiss-cpu (IndexHNSWFlat) and usearch.

Called by bench/run_ann.sh (which makes the venv, installs bench/requirements-ann.txt and builds the
binaries); run from the repository root:

    bench/.venv/bin/python bench/py/ann.py [--quick] [--no-doc] [--rounds N] [--libs sextant,sextant-int8,hnswlib,faiss,usearch]
                                           [--datasets KEY,...] [--keep] [--from-results FILE]

Per dataset and library, M = 16, efConstruction = 200:
  - build with 2 threads, in its own process (peers: bench/py/ann_peer.py build; Sextant: sextant-bench
    build, which creates the collection, imports the vectors, flushes and waits for the graphs), peak RSS;
  - bytes of the index on disk (the saved file; Sextant: the database directory);
  - search with 1 thread over the ef sweep in fresh processes under /usr/bin/time -v, the libraries
    alternating, `rounds` rounds; per ef the QPS is the median round; open (load from disk) + first query;
    peak RSS of the search process;
  - tie-aware recall@10 per ef from the first round's hits (bench/py/recall.py), and the QPS at the
    smallest ef whose recall@10 >= 0.95, with its ratio to hnswlib's.
Results go to bench/results/ann-STAMP/results.json; a dated section is appended to Docs/Benchmarks.md.
Benchmarks are not tests: nothing here fails on a figure. Correctness problems (recall that falls as ef
grows, bad or short results, wrong scores, segments without a graph) are listed, not hidden.
"""

import argparse
import datetime
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

from common import du_bytes, last_json, median

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
os.chdir(ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench", "py"))

PY = "bench/.venv/bin/python"
BENCH = ".build-bench-pkg/release/sextant-bench"
DATA = "bench/data"
SHARED = "../shared/data/debian-minilm-20k"
DOC = "Docs/Benchmarks.md"
MB = 1e6
EFS = [10, 16, 32, 64, 128, 256]
M, EFC, BUILD_THREADS, K = 16, 200, 2, 10
PEERS = ["hnswlib", "faiss", "usearch"]
NAMES = {"sextant": "Sextant", "sextant-int8": "Sextant int8", "hnswlib": "hnswlib", "faiss": "faiss-cpu (IndexHNSWFlat)", "usearch": "usearch"}
TARGET_RECALL = 0.95

COMMANDS = []


def log(msg):
    print(f"[ann] {msg}", file=sys.stderr, flush=True)


def run(cmd, *, record=True, timed=False, env=None):
    """Runs cmd; with timed, under /usr/bin/time -v. Returns (stdout, stderr, info)."""
    if record:
        COMMANDS.append(" ".join([f"{k}={v}" for k, v in (env or {}).items()] + (["/usr/bin/time -v"] if timed else []) + cmd))
    full = cmd
    tfile = os.path.join(DATA, ".time-ann.txt")
    if timed:
        full = ["/usr/bin/time", "-v", "-o", tfile] + cmd
    e = dict(os.environ)
    if env:
        e.update(env)
    p = subprocess.run(full, capture_output=True, text=True, env=e)
    if p.returncode != 0:
        sys.stderr.write(p.stderr[-4000:])
        raise RuntimeError(f"command failed ({p.returncode}): {' '.join(cmd)}")
    info = {}
    if timed:
        with open(tfile) as f:
            t = f.read()
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", t)
        info["max_rss_bytes"] = int(m.group(1)) * 1024 if m else None
        m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", t)
        if m:
            secs = 0.0
            for x in m.group(1).split(":"):
                secs = secs * 60 + float(x)
            info["wall_s"] = secs
        m = re.search(r"Percent of CPU this job got: (\d+)%", t)
        info["cpu_percent"] = int(m.group(1)) if m else None
    return p.stdout, p.stderr, info








def npy_shape(path):
    with open(path, "rb") as f:
        head = f.read(256).decode("latin1")
    m = re.search(r"'shape': \((\d+), (\d+)\)", head)
    return int(m.group(1)), int(m.group(2))


# ---------------------------------------------------------------- datasets

def all_datasets():
    syn = f"{DATA}/synth-1m-128"
    cos = f"{DATA}/synth-200k-768-cos"
    return [
        {"key": "debian-minilm-20k", "title": "Real 384-d: debian-minilm-20k (20,000 × 384, cosine = inner product on normalized rows, 500 queries)",
         "peer_metric": "ip", "sextant_metric": "cosine", "recall_metric": "cosine",
         "base": f"{SHARED}/base.f32.npy", "queries": f"{SHARED}/queries.f32.npy", "gt": f"{SHARED}/gt_cosine_top100.i32.npy",
         "prepare": None, "quick": True},
        {"key": "synth-1m-128", "title": "Synthetic 1,000,000 × 128 (1,000 Gaussian clusters, σ = 0.5, seed 20261121, L2, 1,000 queries)",
         "peer_metric": "l2", "sextant_metric": "euclidean", "recall_metric": "l2",
         "base": f"{syn}/base.f32.npy", "queries": f"{syn}/queries.f32.npy", "gt": f"{syn}/gt_l2_top100.i32.npy",
         "prepare": [PY, "bench/py/prepare.py", "synth", syn, "--n", "1000000", "--dim", "128", "--queries", "1000",
                     "--clusters", "1000", "--seed", "20261121", "--sigma", "0.5"], "quick": False},
        {"key": "synth-200k-768-cos", "title": "Synthetic 200,000 × 768 (1,000 Gaussian clusters, σ = 0.5, seed 20261121, rows normalized, cosine, 1,000 queries)",
         "peer_metric": "ip", "sextant_metric": "cosine", "recall_metric": "cosine",
         "base": f"{cos}/base.f32.npy", "queries": f"{cos}/queries.f32.npy", "gt": f"{cos}/gt_cosine_top100.i32.npy",
         "prepare": [PY, "bench/py/prepare.py", "synth", cos, "--n", "200000", "--dim", "768", "--queries", "1000",
                     "--clusters", "1000", "--seed", "20261121", "--sigma", "0.5", "--metric", "cosine", "--no-records"],
         "quick": False},
    ]


# ---------------------------------------------------------------- measurements

def build(lib, ds, workdir):
    n, d = ds["n"], ds["dim"]
    if lib in ("sextant", "sextant-int8"):
        path = f"{workdir}/{lib}-db"
        if os.path.exists(path):
            shutil.rmtree(path)
        extra = ["--quantization", "int8"] if lib == "sextant-int8" else []
        out, _, info = run([BENCH, "build", path, "bench", ds["base"], "--metric", ds["sextant_metric"], "--m", str(M),
                            "--efc", str(EFC), "--threads", str(BUILD_THREADS)] + extra, timed=True)
        r = last_json(out)
        r["index_bytes"] = du_bytes(path)
        r["path"] = path
        # Bytes the traversal reads vectors from: the int8 codes, or the float32 vectors.
        codes = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(path) for f in fs if f.endswith(".q8"))
        r["traversal_vector_bytes"] = codes if lib == "sextant-int8" else n * d * 4
    else:
        path = f"{workdir}/{lib}.index"
        out, _, info = run([PY, "bench/py/ann_peer.py", "build", lib, ds["base"], path, "--metric", ds["peer_metric"],
                            "--m", str(M), "--efc", str(EFC), "--threads", str(BUILD_THREADS)], timed=True)
        r = last_json(out)
        r["path"] = path
    r["max_rss_bytes"] = info.get("max_rss_bytes")
    r["process_wall_s"] = info.get("wall_s")
    r["cpu_percent"] = info.get("cpu_percent")
    return r


def search(lib, ds, built, workdir, resdir, first_round, rounds_env):
    hits = f"{resdir}/{ds['key']}-{lib}-ef%d.jsonl" if first_round else None
    if lib in ("sextant", "sextant-int8"):
        cmd = [BENCH, "ann", built["path"], "bench", ds["queries"], "--ef-sweep", ",".join(map(str, EFS)),
               "--k", str(K), "--repeat", "3", "--min-time", "0.5", "--warmup", "5"]
        env = None
    else:
        cmd = [PY, "bench/py/ann_peer.py", "search", lib, built["path"], ds["queries"], "--metric", ds["peer_metric"],
               "--dim", str(ds["dim"]), "--count", str(ds["n"]), "--ef-sweep", ",".join(map(str, EFS)),
               "--k", str(K), "--repeat", "3", "--min-time", "0.5", "--warmup", "5"]
        env = rounds_env
    if hits:
        cmd += ["--out", hits]
    out, _, info = run(cmd, timed=True, record=first_round, env=env)
    r = last_json(out)
    r["max_rss_bytes"] = info.get("max_rss_bytes")
    r["hits"] = hits
    return r


def recall_of(hits, ds, record):
    out, _, _ = run([PY, "bench/py/recall.py", hits, ds["base"], ds["queries"], ds["gt"], "--metric", ds["recall_metric"],
                     "--k", str(K)], record=record)
    return last_json(out)


def summarize(lib, builds, runs, recalls):
    per_ef = []
    for i, ef in enumerate(EFS):
        qps_rounds = [r["per_ef"][i]["qps"] for r in runs]
        rec = recalls[ef]
        per_ef.append({"ef": ef, "qps": median(qps_rounds), "qps_rounds": qps_rounds, "recall": rec["recall"],
                       "recall_detail": rec})
    at = next((p for p in per_ef if p["recall"] >= TARGET_RECALL), None)
    b = builds
    return {
        "lib": lib, "version": runs[0].get("version"), "build": b,
        "build_s": b["build_s"], "index_bytes": b["index_bytes"], "traversal_vector_bytes": b.get("traversal_vector_bytes"),
        "open_ms": median([r["open_ms"] for r in runs]),
        "first_query_ms": median([r["first_query_ms"] for r in runs]),
        "open_plus_first_query_ms": median([r["open_plus_first_query_ms"] for r in runs]),
        "search_max_rss_bytes": max(r["max_rss_bytes"] or 0 for r in runs),
        "per_ef": per_ef,
        "at_target": {"ef": at["ef"], "qps": at["qps"], "recall": at["recall"]} if at else None,
        "segments": runs[0].get("segments"),
    }


def check_problems(ds, lib, s):
    """Correctness first: what a reader must see before any speed figure."""
    probs = []
    recs = [p["recall"] for p in s["per_ef"]]
    for a, b, pa, pb in zip(recs, recs[1:], s["per_ef"], s["per_ef"][1:]):
        if b < a - 0.002:
            probs.append(f"{ds['key']} / {lib}: recall@10 falls from {a:.4f} (ef {pa['ef']}) to {b:.4f} (ef {pb['ef']})")
    if recs[-1] < 0.9:
        probs.append(f"{ds['key']} / {lib}: recall@10 at ef {EFS[-1]} is only {recs[-1]:.4f}")
    for p in s["per_ef"]:
        d = p["recall_detail"]
        if d["bad_ids"]:
            probs.append(f"{ds['key']} / {lib}: ef {p['ef']}: {d['bad_ids']} ids outside 0..n-1 (wrong ids)")
        if d["short_results"]:
            probs.append(f"{ds['key']} / {lib}: ef {p['ef']}: {d['short_results']} queries with fewer than {K} results")
        if d["max_score_error"] > 1e-3:
            probs.append(f"{ds['key']} / {lib}: ef {p['ef']}: returned scores differ from the true ones by up to {d['max_score_error']:.3g}")
    if lib in ("sextant", "sextant-int8"):
        b = s["build"]
        if b.get("count") != ds["n"]:
            probs.append(f"{ds['key']} / sextant: count after build is {b.get('count')}, not {ds['n']}")
        bad = [seg for seg in (s["segments"] or []) if seg.get("index") != "graph"]
        if bad:
            probs.append(f"{ds['key']} / sextant: {len(bad)} of {len(s['segments'])} segments are not 'graph' when searched: {bad[:3]}")
        if b.get("memtable_rows"):
            probs.append(f"{ds['key']} / sextant: {b['memtable_rows']} rows still in memory after flush + waitForIndexing")
    if s["at_target"] is None:
        probs.append(f"{ds['key']} / {lib}: no ef in the sweep reaches recall@10 ≥ {TARGET_RECALL}")
    return probs


def bench_dataset(ds, libs, args, resdir):
    log(f"== {ds['key']}")
    t0 = time.time()
    if ds["prepare"]:
        run(ds["prepare"])
    ds["n"], ds["dim"] = npy_shape(ds["base"])
    workdir = f"{DATA}/ann/{ds['key']}"
    os.makedirs(workdir, exist_ok=True)
    builds = {}
    for lib in libs:
        log(f"build {lib}")
        try:
            builds[lib] = build(lib, ds, workdir)
        except RuntimeError as e:
            log(f"  FAILED: {e}")
            builds[lib] = {"error": str(e)}
            continue
        b = builds[lib]
        extra = ""
        if lib.startswith("sextant"):
            extra = (f" (import {b['import_s']:.1f}s, flush {b['flush_s']:.1f}s, waiting for graphs {b['wait_indexing_s']:.1f}s; "
                     f"{len(b['segments'])} segments)")
        log(f"  {b['build_s']:.1f}s{extra}, index {b['index_bytes'] / MB:.1f} MB, peak RSS {b['max_rss_bytes'] / MB:.0f} MB")
    ok = [lib for lib in libs if "error" not in builds[lib]]
    runs = {lib: [] for lib in ok}
    failed = {}
    for r in range(args.rounds):
        order = ok[r % len(ok):] + ok[:r % len(ok)] if ok else []
        for lib in order:
            if lib in failed:
                continue
            try:
                res = search(lib, ds, builds[lib], workdir, resdir, r == 0, None)
            except RuntimeError as e:
                log(f"  search {lib} FAILED: {e}")
                failed[lib] = str(e)
                continue
            runs[lib].append(res)
        log(f"round {r + 1}: " + ", ".join(f"{lib} {runs[lib][-1]['per_ef'][3]['qps']:,.0f} QPS@ef64" for lib in order if lib not in failed and runs[lib]))
    summaries, problems = {}, []
    for lib in ok:
        if lib in failed or not runs[lib]:
            problems.append(f"{ds['key']} / {lib}: search failed: {failed.get(lib, 'no runs')}")
            continue
        recalls = {ef: recall_of(runs[lib][0]["hits"] % ef, ds, record=(lib == ok[0] and ef == EFS[0])) for ef in EFS}
        summaries[lib] = summarize(lib, builds[lib], runs[lib], recalls)
        problems += check_problems(ds, lib, summaries[lib])
        log(f"{lib}: recall " + " ".join(f"{p['ef']}:{p['recall']:.3f}" for p in summaries[lib]["per_ef"]))
    for lib in libs:
        if "error" in builds[lib]:
            problems.append(f"{ds['key']} / {lib}: build failed: {builds[lib]['error']}")
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return {"dataset": ds["key"], "title": ds["title"], "rows": ds["n"], "dim": ds["dim"],
            "metric": ds["sextant_metric"], "libs": [lib for lib in libs if lib in summaries], "summaries": summaries,
            "problems": problems, "elapsed_s": time.time() - t0}


# ---------------------------------------------------------------- report

def f_int(x):
    return "—" if x is None else f"{x:,.0f}"


def f_ratio(x):
    return "—" if x is None else f"{x:.2f}×"


def table(r):
    libs = r["libs"]
    hn = r["summaries"].get("hnswlib")
    head = (["library", "build s (2 thr)", "index MB", "open + 1st query ms", "search peak RSS MB"]
            + [f"ef {ef}: QPS (recall)" for ef in EFS] + ["QPS @ recall ≥ 0.95 (ef)", "vs hnswlib: QPS@0.95 / build"])
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for lib in libs:
        s = r["summaries"][lib]
        name = NAMES[lib] + (f" {s['version']}" if s.get("version") and not lib.startswith("sextant") else "")
        cells = [name, f"{s['build_s']:.1f}", f"{s['index_bytes'] / MB:.1f}", f"{s['open_plus_first_query_ms']:.1f}",
                 f"{s['search_max_rss_bytes'] / MB:.0f}"]
        cells += [f"{p['qps']:,.0f} ({p['recall']:.3f})" for p in s["per_ef"]]
        at = s["at_target"]
        cells.append(f"{at['qps']:,.0f} (ef {at['ef']})" if at else "— (never)")
        qr = at["qps"] / hn["at_target"]["qps"] if (at and hn and hn["at_target"]) else None
        br = s["build_s"] / hn["build_s"] if hn else None
        cells.append(f"{f_ratio(qr)} / {f_ratio(br)}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sextant_notes(r):
    s = r["summaries"].get("sextant")
    if not s:
        return None
    b = s["build"]
    segs = s["segments"] or []
    states = {}
    for seg in segs:
        states[seg.get("index")] = states.get(seg.get("index"), 0) + 1
    win = b.get("indexing_window_s")
    seen = b.get("first_segment_indexing_seen_s")
    timeline = f"; a segment was first seen indexing at {seen:.1f} s, then {win:.1f} s until all graphs were done" if win is not None else ""
    return (f"Sextant build: create {b['create_s']:.2f} s, import {b['import_s']:.1f} s, flush {b['flush_s']:.1f} s, "
            f"then waiting for the graphs {b['wait_indexing_s']:.1f} s{timeline}; "
            f"process CPU {b['cpu_s']:.0f} s over {b['build_s']:.0f} s wall; build peak RSS {b['max_rss_bytes'] / MB:.0f} MB; "
            f"{len(segs)} segment(s) when searched ({', '.join(f'{v} {k}' for k, v in states.items())}); "
            f"open {s['open_ms']:.1f} ms + first query (ef 64) {s['first_query_ms']:.1f} ms.")


def targets_table(results):
    rows = []
    for r in results:
        s, hn = r["summaries"].get("sextant"), r["summaries"].get("hnswlib")
        if not s or not hn:
            continue
        qr = s["at_target"]["qps"] / hn["at_target"]["qps"] if s["at_target"] and hn["at_target"] else None
        rows.append(f"| QPS at recall@10 ≥ 0.95 vs hnswlib, {r['dataset']} | "
                    f"{f_int(s['at_target']['qps']) if s['at_target'] else '—'} vs {f_int(hn['at_target']['qps']) if hn['at_target'] else '—'} | "
                    f"{f_ratio(qr)} | ≥ 1.0× (aim 1.3×) | {'**yes**' if qr and qr >= 1.0 else '**no**'} |")
        br = s["build_s"] / hn["build_s"]
        rows.append(f"| build, 2 threads, vs hnswlib, {r['dataset']} | {s['build_s']:.1f} s vs {hn['build_s']:.1f} s | "
                    f"{f_ratio(br)} | ≤ 1.0× | {'**yes**' if br <= 1.0 else '**no**'} |")
        if r["dataset"] == "synth-1m-128":
            o = s["open_plus_first_query_ms"]
            rows.append(f"| reopen of 1M × 128 indexed + first query | {o:.1f} ms | | ≤ 100 ms | {'**yes**' if o <= 100 else '**no**'} |")
    for r in results:
        s, q = r["summaries"].get("sextant"), r["summaries"].get("sextant-int8")
        if not s or not q:
            continue
        fb, qb = s.get("traversal_vector_bytes"), q.get("traversal_vector_bytes")
        if fb and qb:
            rows.append(f"| int8: traversal vector bytes vs float32, {r['dataset']} | {qb / 1e6:.1f} MB vs {fb / 1e6:.1f} MB | "
                        f"{fb / qb:.2f}× smaller | ≥ 3.5× | {'**yes**' if fb / qb >= 3.5 else '**no**'} |")
        i64 = EFS.index(64)
        fr, qr_ = s["per_ef"][i64]["recall"], q["per_ef"][i64]["recall"]
        rows.append(f"| int8: recall@10 at ef 64 vs float32, {r['dataset']} | {qr_:.3f} vs {fr:.3f} | {qr_ - fr:+.3f} | ≥ −0.01 | "
                    f"{'**yes**' if qr_ - fr >= -0.01 else '**no**'} |")
        fq, qq = s["per_ef"][i64]["qps"], q["per_ef"][i64]["qps"]
        rows.append(f"| int8: QPS at ef 64 vs float32, {r['dataset']} | {f_int(qq)} vs {f_int(fq)} | {f_ratio(qq / fq)} | ≥ 1.0× | "
                    f"{'**yes**' if qq >= fq else '**no**'} |")
    if not rows:
        return None
    return "\n".join(["| target (issue 3) | measured | ratio | target | met |", "|---|---|---:|---|---|"] + rows)


def versions_line(results):
    v = {}
    for r in results:
        for lib, s in r["summaries"].items():
            if not lib.startswith("sextant") and s.get("version"):
                v[lib] = s["version"]
    return ", ".join(f"{NAMES[k].split(' ')[0]} {v[k]}" for k in PEERS if k in v)


def markdown_section(results, machine, args, date, sextant_status):
    mode = f"`{args.invocation}`"
    L = [f"\n## {date} — issue 3, HNSW vs peers: {mode}\n"]
    L.append(f"Machine: {machine['cpu']}, {machine['cores']} vCPUs{' with AVX-512' if machine['avx512'] else ''}, "
             f"{machine['memory']} RAM, Linux {machine['kernel']}; shared and noisy (1-min load average "
             f"{machine['loadavg_start']:.1f} at the start, {machine['loadavg_end']:.1f} at the end). {machine['swift']}; "
             f"Python {machine['python']}, numpy {machine['numpy']}; peers from PyPI: {versions_line(results)}. "
             f"Sextant at commit {machine['commit']}{' with uncommitted changes in Sources/' if machine['dirty'] else ''}: "
             f"{sextant_status}.\n")
    L.append(f"M = {M}, efConstruction = {EFC}, k = {K}; build with {BUILD_THREADS} threads; search one thread, "
             f"QPS the median of {args.rounds} rounds (fresh processes, libraries alternating; each round's figure "
             f"is the median of ≥ 3 passes and ≥ 0.5 s); recall@10 tie-aware (`bench/py/recall.py`); "
             f"open = load from disk + first query at ef 64, median of the rounds. MB = 10⁶ bytes.\n")
    tt = targets_table(results)
    if tt:
        L.append(tt + "\n")
    for r in results:
        L.append(f"### {r['title']}\n")
        L.append(table(r) + "\n")
        n = sextant_notes(r)
        if n:
            L.append(n + "\n")
    probs = [p for r in results for p in r["problems"]]
    L.append("Correctness checks (recall not rising with ef, ids outside the data, short results, wrong scores, "
             "segments without a graph): " + ("none failed." if not probs else "") + "\n")
    for p in probs:
        L.append(f"- {p}")
    if probs:
        L.append("")
    L.append("Commands (paths relative to the repository root):\n")
    L.append("```")
    seen = set()
    for c in COMMANDS:
        c = re.sub(r"bench/results/ann-\d{8}-\d{6}/", "bench/results/RUN/", c)
        if c not in seen:
            seen.add(c)
            L.append(c)
    L.append("```\n")
    return "\n".join(L)


def print_tables(results):
    for r in results:
        print(f"\n{r['title']}")
        print(table(r))
        n = sextant_notes(r)
        if n:
            print(n)
        for p in r["problems"]:
            print(f"  PROBLEM: {p}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="the 20k dataset only")
    ap.add_argument("--no-doc", action="store_true", help="do not append to Docs/Benchmarks.md")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--libs", default="sextant,sextant-int8,hnswlib,faiss,usearch")
    ap.add_argument("--datasets", help="comma-separated dataset keys (default: all, or the 20k set with --quick)")
    ap.add_argument("--no-sextant", action="store_true", help="the peers only")
    ap.add_argument("--keep", action="store_true", help="keep the built indexes under bench/data/ann/")
    ap.add_argument("--date", default=datetime.date.today().isoformat())
    ap.add_argument("--from-results", help="re-render a past results.json, measure nothing")
    args = ap.parse_args()
    argv = " ".join(sys.argv[1:])
    args.invocation = (f"bash bench/run_ann.sh {argv}" if os.environ.get("SEXTANT_ANN_VIA") == "run_ann.sh"
                       else f"bench/.venv/bin/python bench/py/ann.py {argv}").strip()

    if args.from_results:
        with open(args.from_results) as f:
            saved = json.load(f)
        COMMANDS.extend(saved["commands"])
        args.quick, args.rounds = saved["quick"], saved["rounds"]
        args.invocation = saved.get("invocation", "bash bench/run_ann.sh")
        print_tables(saved["results"])
        print(markdown_section(saved["results"], saved["machine"], args, saved["date"], saved["sextant_status"]))
        return

    libs = [x for x in args.libs.split(",") if x]
    sextant_status = "HNSW benchmarked"
    if any(x.startswith("sextant") for x in libs):
        try:
            feats = json.loads(subprocess.run([BENCH, "features"], capture_output=True, text=True).stdout or "{}")
        except (OSError, ValueError):
            feats = {}
        if args.no_sextant or not feats.get("hnsw"):
            libs = [x for x in libs if not x.startswith("sextant")]
            sextant_status = ("not run (--no-sextant)" if args.no_sextant else
                              "not run (the HNSW API is not in the library yet, or sextant-bench was built without it)")
            log(f"Sextant: {sextant_status}")
    dsets = all_datasets()
    if args.datasets:
        keys = args.datasets.split(",")
        dsets = [d for d in dsets if d["key"] in keys]
    elif args.quick:
        dsets = [d for d in dsets if d["quick"]]

    sys.dont_write_bytecode = True
    from bench import machine_info  # noqa: E402  (bench/py/bench.py)
    os.chdir(ROOT)
    start = time.time()
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    resdir = f"bench/results/ann-{stamp}"
    os.makedirs(resdir, exist_ok=True)
    machine = machine_info()
    results = [bench_dataset(ds, libs, args, resdir) for ds in dsets]
    machine["loadavg_end"] = os.getloadavg()[0]
    with open(f"{resdir}/results.json", "w") as f:
        json.dump({"date": args.date, "machine": machine, "quick": args.quick, "rounds": args.rounds,
                   "invocation": args.invocation, "sextant_status": sextant_status, "results": results, "commands": COMMANDS}, f, indent=1)
    print_tables(results)
    print(f"\nraw results: {resdir}/results.json; total {time.time() - start:.0f}s")
    if not args.no_doc:
        with open(DOC, "a") as f:
            f.write(markdown_section(results, machine, args, args.date, sextant_status))
        print(f"appended a section to {DOC}")


if __name__ == "__main__":
    main()
