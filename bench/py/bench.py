"""Runs Sextant's benchmarks side by side with numpy, prints the results and records them.

Called by bench/run.sh (which makes the venv and builds the binaries); run from the repository root:

    bench/.venv/bin/python bench/py/bench.py [--quick] [--no-synth-jsonl] [--no-doc] [--rounds N]

Per dataset: durable import (npy + records, and JSON Lines) with its peak RSS, bytes on disk, open time
(+ first query) in fresh processes, exact-search QPS with one thread against numpy in alternating
processes (so machine noise hits both alike), peak RSS during search, tie-aware recall@10 of both
against the exact ground truth. Results go to bench/results/ (JSON) and a dated section is appended to
Docs/Benchmarks.md. Benchmarks are not tests: nothing here fails on a figure.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time

from common import du_bytes, median

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
os.chdir(ROOT)

PY = "bench/.venv/bin/python"
SEXTANT = ".build-bench/release/sextant"
BENCH = ".build-bench-pkg/release/sextant-bench"
DATA = "bench/data"
SHARED = "../shared/data/debian-minilm-20k"
DOC = "Docs/Benchmarks.md"
MB = 1e6  # all sizes in decimal megabytes

COMMANDS = []  # every measured command, for the report


def log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def run(cmd, *, record=True, timed=False, env=None, check=True):
    """Runs cmd (a list). With timed, under /usr/bin/time -v; returns (stdout, stderr, time_info)."""
    if record:
        COMMANDS.append(" ".join([f"{k}={v}" for k, v in (env or {}).items()] + (["/usr/bin/time -v"] if timed else []) + cmd))
    full = cmd
    tfile = None
    if timed:
        tfile = os.path.join(DATA, ".time.txt")
        full = ["/usr/bin/time", "-v", "-o", tfile] + cmd
    e = dict(os.environ)
    if env:
        e.update(env)
    p = subprocess.run(full, capture_output=True, text=True, env=e)
    if check and p.returncode != 0:
        sys.stderr.write(p.stderr[-4000:])
        raise SystemExit(f"command failed ({p.returncode}): {' '.join(cmd)}")
    info = {}
    if timed:
        with open(tfile) as f:
            t = f.read()
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", t)
        info["max_rss_bytes"] = int(m.group(1)) * 1024 if m else None
        m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", t)
        if m:
            parts = [float(x) for x in m.group(1).split(":")]
            secs = 0.0
            for x in parts:
                secs = secs * 60 + x
            info["wall_s"] = secs
    return p.stdout, p.stderr, info






# ---------------------------------------------------------------- datasets

def datasets(args):
    out = []
    deb = f"{DATA}/debian-minilm-20k"
    out.append({
        "key": "debian-minilm-20k", "title": "Real 384-d: debian-minilm-20k (20,000 × 384, cosine, metadata + documents)",
        "dim": 384, "metric": "cosine", "np_metric": "ip", "recall_metric": "cosine",
        "base": f"{SHARED}/base.f32.npy", "queries": f"{SHARED}/queries.f32.npy",
        "gt": f"{SHARED}/gt_cosine_top100.i32.npy", "records": f"{SHARED}/records.jsonl",
        "ids": f"{deb}/ids.txt", "jsonl": f"{deb}/full.jsonl",
        "prepare": [PY, "bench/py/prepare.py", "debian", SHARED, deb],
        "import_runs": 5, "search_rounds": args.rounds or 5, "open_runs": 5, "search_as_imported": True,
        "rss_target": None,
    })
    if not args.quick:
        syn = f"{DATA}/synth-1m-128"
        prep = [PY, "bench/py/prepare.py", "synth", syn, "--n", "1000000", "--dim", "128", "--queries", "1000",
                "--clusters", "1000", "--seed", "20261121", "--sigma", "0.5"]
        if not args.no_synth_jsonl:
            prep.append("--jsonl")
        out.append({
            "key": "synth-1m-128", "title": "Synthetic 1,000,000 × 128 (1,000 Gaussian clusters, σ = 0.5, seed 20261121, L2, small metadata)",
            "dim": 128, "metric": "euclidean", "np_metric": "l2", "recall_metric": "l2",
            "base": f"{syn}/base.f32.npy", "queries": f"{syn}/queries.f32.npy",
            "gt": f"{syn}/gt_l2_top100.i32.npy", "records": f"{syn}/records.jsonl",
            "ids": None, "jsonl": None if args.no_synth_jsonl else f"{syn}/full.jsonl",
            "prepare": prep,
            "import_runs": 1, "search_rounds": args.rounds or 3, "open_runs": 5, "search_as_imported": False,
            "rss_target": 1.5,
        })
    return out


def npy_shape(path):
    with open(path, "rb") as f:
        head = f.read(256).decode("latin1")
    m = re.search(r"'shape': \((\d+), (\d+)\)", head)
    return int(m.group(1)), int(m.group(2))


# ---------------------------------------------------------------- measurements

def fresh_db(path, ds):
    if os.path.exists(path):
        shutil.rmtree(path)
    run([SEXTANT, "create", "bench", "--db", path, "--dim", str(ds["dim"]), "--metric", ds["metric"]])


def import_once(path, ds, kind):
    fresh_db(path, ds)
    if kind in ("npy", "npy-vectors"):
        cmd = [SEXTANT, "import", "bench", ds["base"], "--db", path]
        if kind == "npy":
            cmd += ["--records", ds["records"]]
        if ds["ids"]:
            cmd += ["--ids", ds["ids"]]
    else:
        cmd = [SEXTANT, "import", "bench", ds["jsonl"], "--db", path]
    cmd += ["--batch", "1000"]
    out, err, info = run(cmd, timed=True)
    m = re.search(r"imported (\d+) records in ([\d.]+)s \((\d+) records/s\)", err)
    if not m:
        raise SystemExit(f"no 'imported' line from: {' '.join(cmd)}\n{err[-2000:]}")
    n, secs, rate = int(m.group(1)), float(m.group(2)), float(m.group(3))  # the CLI's rate is from unrounded time
    count = int(run([SEXTANT, "count", "bench", "--db", path], record=False)[0].strip())
    return {"records": n, "seconds": secs, "rate": rate, "wall_s": info.get("wall_s"),
            "wall_rate": n / info["wall_s"] if info.get("wall_s") else None,
            "max_rss_bytes": info["max_rss_bytes"], "count_after": count,
            "batches": out.count("committed "), "bytes_on_disk": du_bytes(path)}


def measure_import(path, ds, kind):
    runs = [import_once(path, ds, kind) for _ in range(ds["import_runs"])]
    best = sorted(runs, key=lambda r: r["rate"])[len(runs) // 2]  # the median run (kept DB is the last)
    return {"runs": runs, "rate": median([r["rate"] for r in runs]), "wall_rate": median([r["wall_rate"] for r in runs]),
            "seconds": best["seconds"], "max_rss_bytes": max(r["max_rss_bytes"] for r in runs),
            "count_after": runs[-1]["count_after"], "records": runs[-1]["records"], "bytes_on_disk": runs[-1]["bytes_on_disk"]}


def measure_open(path, ds):
    runs = []
    for i in range(ds["open_runs"]):
        out, _, info = run([BENCH, "open", path, "bench", "--query", ds["queries"]], timed=True, record=(i == 0))
        r = json.loads(out)
        r["max_rss_bytes"] = info["max_rss_bytes"]
        runs.append(r)
    keys = ["open_ms", "open_total_ms", "first_query_ms", "second_query_ms", "open_plus_first_query_ms"]
    res = {k: median([r[k] for r in runs]) for k in keys}
    res["runs"] = runs
    res["count"] = runs[0]["count"]
    return res


def measure_search(path, ds, tag, resdir):
    """Alternates Sextant and numpy processes, one pass over all queries each, `search_rounds` times."""
    s_runs, n_runs = [], []
    s_hits = f"{resdir}/{ds['key']}-{tag}-hits-sextant.jsonl"
    n_hits = f"{resdir}/{ds['key']}-{tag}-hits-numpy.jsonl"
    for r in range(ds["search_rounds"]):
        cmd = [BENCH, "search", path, "bench", ds["queries"], "--k", "10", "--repeat", "1", "--warmup", "5"]
        if r == 0:
            cmd += ["--out", s_hits]
        out, _, info = run(cmd, timed=True, record=(r == 0))
        j = json.loads(out)
        j["max_rss_bytes"] = info["max_rss_bytes"]
        s_runs.append(j)
        cmd = [PY, "bench/py/numpy_exact.py", ds["base"], ds["queries"], "--metric", ds["np_metric"], "--k", "10",
               "--repeat", "1", "--warmup", "5"]
        if r == 0:
            cmd += ["--out", n_hits]
        out, _, info = run(cmd, timed=True, record=(r == 0), env={"OPENBLAS_NUM_THREADS": "1"})
        j = json.loads(out)
        j["max_rss_bytes"] = info["max_rss_bytes"]
        n_runs.append(j)
        log(f"  {tag} round {r + 1}: sextant {s_runs[-1]['qps']:.1f} QPS, numpy {n_runs[-1]['qps']:.1f} QPS")

    def summary(runs):
        return {"qps": median([x["qps"] for x in runs]), "qps_rounds": [x["qps"] for x in runs],
                "p50_ms": median([x["p50_ms"] for x in runs]), "p99_ms": median([x["p99_ms"] for x in runs]),
                "max_rss_bytes": max(x["max_rss_bytes"] for x in runs), "queries": runs[0]["queries"]}

    s, n = summary(s_runs), summary(n_runs)
    n["numpy"], n["blas"] = n_runs[0]["numpy"], n_runs[0]["blas"]
    ratios = [a["qps"] / b["qps"] for a, b in zip(s_runs, n_runs)]
    res = {"sextant": s, "numpy": n, "ratio": s["qps"] / n["qps"], "ratio_per_round": ratios}
    for who, hits in (("sextant", s_hits), ("numpy", n_hits)):
        out, _, _ = run([PY, "bench/py/recall.py", hits, ds["base"], ds["queries"], ds["gt"],
                         "--metric", ds["recall_metric"], "--k", "10"], record=(who == "sextant"))
        res[who]["recall"] = json.loads(out)
    return res


def bench_dataset(ds, resdir):
    log(f"== {ds['key']}")
    t0 = time.time()
    run(ds["prepare"])
    log(f"data ready in {time.time() - t0:.1f}s")
    n, d = npy_shape(ds["base"])
    res = {"dataset": ds["key"], "title": ds["title"], "rows": n, "dim": d, "metric": ds["metric"],
           "raw_vector_bytes": n * d * 4}
    dbdir = f"{DATA}/db"
    os.makedirs(dbdir, exist_ok=True)
    db_npy = f"{dbdir}/{ds['key']}-npy"
    db_jsonl = f"{dbdir}/{ds['key']}-jsonl"

    if ds["jsonl"]:
        log("import from JSON Lines")
        res["import_jsonl"] = measure_import(db_jsonl, ds, "jsonl")
        log(f"  {res['import_jsonl']['rate']:.0f} records/s, peak RSS {res['import_jsonl']['max_rss_bytes'] / MB:.0f} MB")
        shutil.rmtree(db_jsonl)  # frees the disk; the npy import below is the one kept
    log("import from .npy, vectors only (no records: the cost of metadata and documents by difference)")
    res["import_npy_vectors"] = measure_import(db_npy, ds, "npy-vectors")
    log(f"  {res['import_npy_vectors']['rate']:.0f} records/s, peak RSS {res['import_npy_vectors']['max_rss_bytes'] / MB:.0f} MB")
    log("import from .npy + records")
    res["import_npy"] = measure_import(db_npy, ds, "npy")
    log(f"  {res['import_npy']['rate']:.0f} records/s, peak RSS {res['import_npy']['max_rss_bytes'] / MB:.0f} MB")

    res["info_as_imported"] = json.loads(run([SEXTANT, "info", "bench", "--db", db_npy], record=False)[0])
    res["bytes_as_imported"] = du_bytes(db_npy)
    log("open, as the import left it")
    res["open_as_imported"] = measure_open(db_npy, ds)
    if ds["search_as_imported"] and res["info_as_imported"].get("memtableRows", 0) > 0:
        log("search, as imported")
        res["search_as_imported"] = measure_search(db_npy, ds, "as-imported", resdir)
    run([SEXTANT, "flush", "bench", "--db", db_npy])
    res["info_after_flush"] = json.loads(run([SEXTANT, "info", "bench", "--db", db_npy], record=False)[0])
    res["bytes_after_flush"] = du_bytes(db_npy)
    log("open, after flush")
    res["open_after_flush"] = measure_open(db_npy, ds)
    log("search, after flush")
    res["search_after_flush"] = measure_search(db_npy, ds, "after-flush", resdir)
    shutil.rmtree(db_npy)
    res["elapsed_s"] = time.time() - t0
    return res


# ---------------------------------------------------------------- report

def fmt_int(x):
    return "—" if x is None else f"{x:,.0f}"


def fmt_mb(b):
    return "—" if b is None else f"{b / MB:,.1f} MB"


def fmt_ms(x):
    return "—" if x is None else (f"{x:,.1f} ms" if x >= 10 else f"{x:,.2f} ms")


def yes(ok):
    return "**yes**" if ok else "**no**"


def dataset_table(r):
    rows = []
    rows.append("| measure | Sextant | numpy | ratio | target | met |")
    rows.append("|---|---:|---:|---:|---|---|")
    for tag, label in (("search_after_flush", "after flush (segments)"), ("search_as_imported", "as imported (rows in the in-memory table, replayed from the log)")):
        s = r.get(tag)
        if not s:
            continue
        rows.append(f"| exact search QPS, 1 thread, k=10, {label} | {fmt_int(s['sextant']['qps'])} | {fmt_int(s['numpy']['qps'])} "
                    f"| {s['ratio']:.2f}× | ≥ 1.0× numpy | {yes(s['ratio'] >= 1.0)} |")
        rows.append(f"| — latency p50 / p99 | {s['sextant']['p50_ms']:.2f} / {s['sextant']['p99_ms']:.2f} ms "
                    f"| {s['numpy']['p50_ms']:.2f} / {s['numpy']['p99_ms']:.2f} ms | {s['numpy']['p50_ms'] / s['sextant']['p50_ms']:.2f}× (p50) | | |")
        rows.append(f"| — peak RSS of the search process | {fmt_mb(s['sextant']['max_rss_bytes'])} | {fmt_mb(s['numpy']['max_rss_bytes'])} "
                    f"| {s['sextant']['max_rss_bytes'] / s['numpy']['max_rss_bytes']:.2f}× | | |")
        sr, nr = s["sextant"]["recall"], s["numpy"]["recall"]
        rows.append(f"| — recall@10, tie-aware ({sr['queries']} queries) | {sr['recall']:.4f} | {nr['recall']:.4f} | | 1.0 (exact) | {yes(sr['recall'] >= 1.0)} |")
    big = r["rows"] >= 1_000_000
    is384 = r["dim"] == 384
    imp = r["import_npy"]
    rows.append(f"| import .npy + records, durable, batches of 1,000 (records/s) | {fmt_int(imp['rate'])} | | | "
                f"{'≥ 100,000/s' if is384 else '(target is for 384-d)'} | {yes(imp['rate'] >= 100_000) if is384 else ''} |")
    rows.append(f"| — peak RSS of the import | {fmt_mb(imp['max_rss_bytes'])} | raw vectors {fmt_mb(r['raw_vector_bytes'])} "
                f"| {imp['max_rss_bytes'] / r['raw_vector_bytes']:.2f}× raw | {'≤ 1.5× raw (768 MB)' if big else ''} "
                f"| {yes(imp['max_rss_bytes'] <= 1.5 * r['raw_vector_bytes']) if big else ''} |")
    iv = r["import_npy_vectors"]
    rows.append(f"| import .npy vectors only, no records (for comparison) | {fmt_int(iv['rate'])} | | | | |")
    if "import_jsonl" in r:
        ij = r["import_jsonl"]
        rows.append(f"| import JSON Lines, durable, batches of 1,000 (records/s) | {fmt_int(ij['rate'])} | | | "
                    f"{'≥ 25,000/s' if is384 else '(target is for 384-d)'} | {yes(ij['rate'] >= 25_000) if is384 else ''} |")
        rows.append(f"| — peak RSS of the import | {fmt_mb(ij['max_rss_bytes'])} | | {ij['max_rss_bytes'] / r['raw_vector_bytes']:.2f}× raw | | |")
    else:
        rows.append("| import JSON Lines | not run (--no-synth-jsonl) | | | | |")
    rows.append(f"| bytes on disk, as imported / after flush | {fmt_mb(r['bytes_as_imported'])} / {fmt_mb(r['bytes_after_flush'])} "
                f"| raw vectors {fmt_mb(r['raw_vector_bytes'])} | {r['bytes_after_flush'] / r['raw_vector_bytes']:.2f}× raw (after flush) | | |")
    for tag, label in (("open_as_imported", "as the import left it"), ("open_after_flush", "after `sextant flush`")):
        o = r[tag]
        tgt = "≤ 100 ms" if big else ""
        rows.append(f"| open + collection + count, {label} (median of {len(o['runs'])}) | {fmt_ms(o['open_total_ms'])} | | | {tgt} "
                    f"| {yes(o['open_total_ms'] <= 100) if big else ''} |")
        rows.append(f"| — first exact query after open | {fmt_ms(o['first_query_ms'])} | | | | |")
    return "\n".join(rows)


def machine_info():
    def sh(cmd):
        try:
            return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
        except Exception:  # noqa: BLE001
            return ""
    cpu = sh("lscpu | sed -n 's/^Model name: *//p' | head -1")
    flags = sh("grep -o -w -m1 'avx512f' /proc/cpuinfo | head -1")
    mem = sh("awk '/MemTotal/ {printf \"%.1f GiB\", $2/1048576}' /proc/meminfo")
    return {
        "cpu": cpu, "cores": os.cpu_count(), "avx512": bool(flags), "memory": mem, "kernel": platform.release(),
        "swift": sh("swift --version 2>&1 | head -1"), "python": platform.python_version(),
        "numpy": sh(f"{PY} -c 'import numpy; print(numpy.__version__)'"),
        "commit": sh("git rev-parse --short HEAD"),
        "loadavg_start": os.getloadavg()[0],
        "dirty": bool(sh("git status --porcelain --untracked-files=no -- Sources Package.swift")),
    }


DOC_HEADER = """# Benchmarks

Figures for Sextant measured side by side with its peers on the same machine, in the same run, with the
same data (the rules: `../shared/BENCHMARKS.md`). Benchmarks are not tests: nothing here fails a build;
recall is the only correctness figure, and it must be 1.0 for exact search.

## How to run

```
bash bench/run.sh            # both datasets: about 5 minutes, plus about 1.5 minutes the first time
                             # (data generation, the venv and the release builds)
bash bench/run.sh --quick    # the real 20k set only: about 1 minute
```

`bench/run.sh` makes a venv in `bench/.venv` with numpy (`bench/requirements.txt`), builds Sextant's CLI and
the benchmark driver in release mode, prepares and caches the data under `bench/data/`, runs everything,
prints a table, writes the raw results to `bench/results/` and appends a dated section here (`--no-doc`
skips that). Other flags: `--no-synth-jsonl` skips the 1M-row JSON Lines import (its file is 1.6 GB, written
once), `--rounds N` sets the number of alternating search rounds. Disk: about 2.5 GB of cached data under
`bench/data/`, and up to 1.3 GB more for the databases while it runs.

The builds (separate scratch paths, so they never collide with a developer's `.build`):

```
swift build -c release --scratch-path .build-bench
swift build -c release --package-path bench/SextantBench --scratch-path .build-bench-pkg
```

## How it measures

- **Exact search**: `sextant-bench search` (bench/SextantBench) calls `VectorCollection.search` one query at
  a time in one thread (never the batch API, which uses every core), k = 10, after 5 untimed warm-up
  queries. The peer is numpy `X @ q` + `argpartition` + sorting the k, one query at a time, with
  `OPENBLAS_NUM_THREADS=1` set before numpy is imported (`bench/py/numpy_exact.py`). For cosine on the
  L2-normalized real set numpy does the inner product only. For L2 numpy does what a fair numpy user
  does: squared norms ‖x‖² precomputed once (not timed), then per query `d = ‖x‖² − 2·X@q` in place
  (‖q‖² is constant per query, so left out). Sextant and numpy run in alternating processes, one pass over
  all queries each, several rounds; the QPS is the median round and the ratio is Sextant / numpy.
- **Recall@10** of both against the exact ground truth, tie-aware (`bench/py/recall.py`): a returned id is a
  hit if its true score, recomputed in float64, is at least the 10th true score − 1e-6 (L2: distance at most
  the 10th + 1e-6). The real set is imported with `--ids` = row index, so ids are ground-truth rows.
- **Import**: `sextant import --batch 1000` into a new database — durable, one fsync per batch; the rate
  is the one the CLI prints (from the start of the import to the last commit; it leaves out process start,
  open and close); the median of 5 runs for the 20k set, one run for 1M. Peak RSS of the whole process by
  `/usr/bin/time -v`. JSON Lines vectors are written with 9 significant digits (exact float32 round trip;
  Python's `json.dumps(x.tolist())` would write 17). The vectors-only row imports the same .npy without
  records, to show what metadata and documents cost.
- **Open**: `sextant-bench open` in a fresh process, warm page cache: `Database.open` + `collection()` +
  `count()`, then the first exact query. "As imported" is the database as the import left it (the log
  after the last checkpoint is replayed on open); "after flush" follows `sextant flush`.
- **Bytes on disk**: the sum of the sizes of the files in the database directory. MB = 10⁶ bytes.

## Targets (from the issues)

- exact search ≥ 1.0× numpy per query, one thread;
- import ≥ 100,000 records/s from .npy + records and ≥ 25,000 records/s from JSON Lines, for 384-d records
  with metadata;
- open of the 1M × 128 database ≤ 100 ms;
- peak RSS while importing 1M × 128 ≤ 1.5× the raw vector bytes (768 MB).
"""


def markdown_section(results, machine, args, date):
    lines = []
    mode = "`bash bench/run.sh --quick`" if args.quick else "`bash bench/run.sh`"
    lines.append(f"\n## {date} — {mode}\n")
    lines.append(f"Machine: {machine['cpu']}, {machine['cores']} vCPUs{' with AVX-512' if machine['avx512'] else ''}, "
                 f"{machine['memory']} RAM, Linux {machine['kernel']}; shared and noisy (1-min load average "
                 f"{machine['loadavg_start']:.1f} at the start, {machine['loadavg_end']:.1f} at the end). {machine['swift']}; "
                 f"Python {machine['python']}, numpy {machine['numpy']} "
                 f"({results[0]['search_after_flush']['numpy']['blas']}, 1 thread). Sextant at commit {machine['commit']}"
                 f"{' with uncommitted changes in Sources/' if machine['dirty'] else ''}.\n")
    for r in results:
        lines.append(f"### {r['title']}\n")
        lines.append(dataset_table(r) + "\n")
        s = r["search_after_flush"]
        lines.append(f"Search rounds (QPS, Sextant / numpy): "
                     + ", ".join(f"{a:,.0f} / {b:,.0f}" for a, b in zip(s["sextant"]["qps_rounds"], s["numpy"]["qps_rounds"]))
                     + f". Segments after flush: {len(r['info_after_flush']['segments'])}; "
                     f"as imported: {len(r['info_as_imported']['segments'])} segment(s) + {r['info_as_imported']['memtableRows']:,} rows in memory.\n")
    lines.append("Commands (paths relative to the repository root):\n")
    lines.append("```")
    seen = set()
    for c in COMMANDS:
        c = re.sub(r"bench/results/\d{8}-\d{6}/", "bench/results/RUN/", c)
        if c not in seen:
            seen.add(c)
            lines.append(c)
    lines.append("```\n")
    return "\n".join(lines)


def print_table(results):
    for r in results:
        print(f"\n{r['title']}")
        print(dataset_table(r))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="the 20k dataset only")
    ap.add_argument("--no-synth-jsonl", action="store_true", help="skip the 1M-row JSON Lines import")
    ap.add_argument("--no-doc", action="store_true", help="do not append to Docs/Benchmarks.md")
    ap.add_argument("--rounds", type=int, default=0, help="alternating search rounds (default 5 for 20k, 3 for 1M)")
    ap.add_argument("--date", default=datetime.date.today().isoformat())
    ap.add_argument("--from-results", help="re-render the table and section from a results.json, measure nothing")
    args = ap.parse_args()

    if args.from_results:
        with open(args.from_results) as f:
            saved = json.load(f)
        COMMANDS.extend(saved["commands"])
        args.quick = saved["quick"]
        print_table(saved["results"])
        print(markdown_section(saved["results"], saved["machine"], args, saved["date"]))
        return

    start = time.time()
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    resdir = f"bench/results/{stamp}"
    os.makedirs(resdir, exist_ok=True)
    os.makedirs(DATA, exist_ok=True)
    machine = machine_info()
    results = [bench_dataset(ds, resdir) for ds in datasets(args)]
    machine["loadavg_end"] = os.getloadavg()[0]
    with open(f"{resdir}/results.json", "w") as f:
        json.dump({"date": args.date, "machine": machine, "quick": args.quick, "results": results,
                   "commands": COMMANDS}, f, indent=1)
    print_table(results)
    print(f"\nraw results: {resdir}/results.json; total {time.time() - start:.0f}s")
    if not args.no_doc:
        if not os.path.exists(DOC):
            with open(DOC, "w") as f:
                f.write(DOC_HEADER)
        with open(DOC, "a") as f:
            f.write(markdown_section(results, machine, args, args.date))
        print(f"appended a section to {DOC}")


if __name__ == "__main__":
    main()
